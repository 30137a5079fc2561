"""Fan out the full 6.1 matrix (50 jobs) with the noop recipe, 20 times, through Redis.

Figure: time from `kbo submit` until the coordinator has recorded every job as done.
Baseline, same run, same redis-server: 50 bare Celery tasks per round on a bare worker
with the same pool and concurrency, timed from the first send until the last has run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import Cluster, RedisServer  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "20"))
JOBS = 50
SLOTS = 2


def kbo_rounds(cluster: Cluster) -> tuple[list[float], list[float]]:
    matrix = json.loads(cluster.kbo("matrix", cluster.repo, "--json").stdout)
    arches = sorted({job["arch"] for job in matrix})
    cluster.start_coordinator()
    cluster.start_worker("bench-worker", ",".join(arches), "--unchecked")
    totals, after_reply = [], []
    for n in range(ROUNDS):
        cluster.commit(f"round {n}")
        start = time.perf_counter()
        result = cluster.kbo("submit", "--recipe", "noop")
        assert result.returncode == 0, result.stderr
        replied = time.perf_counter()
        poll_until(lambda want=JOBS * (n + 1): done_jobs(cluster) == want)
        done = time.perf_counter()
        totals.append(done - start)
        after_reply.append(done - replied)
    return totals, after_reply


def bare_rounds(redis_server: RedisServer, tmp: Path) -> list[float]:
    env = os.environ | {"BENCH_BROKER": redis_server.url, "PYTHONPATH": str(ROOT)}
    log = (tmp / "bare.log").open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks.bare_celery",
            "worker",
            "-Q",
            "bare",
            "-c",
            str(SLOTS),
            "-P",
            "prefork",
            "-O",
            "fair",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    os.environ["BENCH_BROKER"] = redis_server.url
    from benchmarks import bare_celery

    client = redis_server.client()
    times = []
    try:
        time.sleep(3)
        for n in range(ROUNDS):
            key = f"bench-round-{n}"
            start = time.perf_counter()
            for _ in range(JOBS):
                bare_celery.noop.apply_async(args=(key,), queue="bare")
            poll_until(lambda k=key: int(client.get(k) or 0) == JOBS)
            times.append(time.perf_counter() - start)
    finally:
        worker.terminate()
        worker.wait(30)
    return times


def done_jobs(cluster: Cluster) -> int:
    return int(cluster.query("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'")[0][0])


def poll_until(predicate: Callable[[], bool], timeout: float = 300) -> None:
    """Poll every 10 ms: both sides of the comparison are timed the same way."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("a round did not finish")
        time.sleep(0.01)


def report(label: str, times: list[float]) -> float:
    median = statistics.median(times)
    print(f"{label:46} median {median:6.2f} s   min {min(times):6.2f} s   max {max(times):6.2f} s")
    return median


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kbo-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o711)  # the worker runs as its own user, and reads the recipes here
        redis_server = RedisServer(tmp / "redis")
        redis_server.start()
        cluster = Cluster(
            tmp / "kbo", broker_url=redis_server.url, build_slots=SLOTS, tracked_arches=[]
        )
        try:
            bare = bare_rounds(redis_server, tmp)
            totals, after_reply = kbo_rounds(cluster)
        finally:
            cluster.stop_all()
            redis_server.stop()
    print(
        f"{JOBS} jobs per round, {ROUNDS} rounds, one worker with {SLOTS} slots, Redis "
        f"(AOF, appendfsync always)\n"
    )
    base = report("bare Celery: send 50 tasks -> all ran", bare)
    kbo = report("kbo: submit -> 50 jobs recorded done", totals)
    report("kbo: coordinator reply -> 50 jobs recorded done", after_reply)
    print(
        f"\nratio kbo / bare Celery: {kbo / base:.1f}x "
        f"({kbo / JOBS * 1000:.0f} ms per job against {base / JOBS * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
