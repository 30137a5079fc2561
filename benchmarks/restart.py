"""How soon a restarted coordinator hears the builds again: from starting `kbo coordinator`
to the first heartbeat it accepts, with a build running and its heartbeats queued while
the coordinator was down. Measured twice: with nothing else queued, and with a submit
whose `git clone` hangs queued ahead of them (the coordinator's main consumer is stuck on
it; heartbeats have a consumer of their own).

Baseline, same run, same redis-server: a bare Celery worker started with one task waiting
for it, timed from its start until the task has run.
"""

from __future__ import annotations

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

from tests.conftest import KBO  # noqa: E402
from tests.services import Cluster, RedisServer, wait_for  # noqa: E402
from tests.test_lease_outages import HangingServer  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "5"))
LEASE = 30  # heartbeats every 10 s
SILENT = LEASE / 3 + 1  # down this long: at least one heartbeat waits in the queue


def poll_until(predicate: Callable[[], bool], timeout: float = 120) -> None:
    """Poll every 10 ms: both sides of the comparison are timed the same way."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("nothing happened in time")
        time.sleep(0.01)


def lease_expiry(cluster: Cluster) -> float:
    rows = cluster.query("SELECT lease_expires FROM attempts WHERE state = 'running'")
    return float(rows[0][0]) if rows else 0.0


def kbo_rounds(cluster: Cluster, *, hanging_submit: bool) -> list[float]:
    times = []
    for _ in range(ROUNDS):
        cluster.kill("coordinator")
        server = HangingServer() if hanging_submit else None
        if server is not None:
            subprocess.Popen(
                [str(KBO), "submit", f"http://127.0.0.1:{server.port}/linux.git"],
                env=cluster.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        time.sleep(SILENT)
        before = lease_expiry(cluster)
        start = time.perf_counter()
        cluster.start("coordinator", "coordinator")
        poll_until(lambda b=before: lease_expiry(cluster) > b)
        times.append(time.perf_counter() - start)
        if server is not None:
            wait_for(lambda s=server: s.accepted, 60, "the hanging clone")
            server.close()
        time.sleep(1)
    return times


def bare_rounds(redis_server: RedisServer, tmp: Path) -> list[float]:
    os.environ["BENCH_BROKER"] = redis_server.url
    from benchmarks import bare_celery

    env = os.environ | {"PYTHONPATH": str(ROOT)}
    client = redis_server.client()
    times = []
    for n in range(ROUNDS):
        key = f"bench-restart-{n}"
        bare_celery.noop.apply_async(args=(key,), queue="bare-restart")
        start = time.perf_counter()
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "benchmarks.bare_celery", "worker"),
                *("-Q", "bare-restart", "-c", "1", "-P", "solo", "--without-gossip"),
                *("--without-mingle", "--without-heartbeat", "-l", "WARNING"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            poll_until(lambda k=key: int(client.get(k) or 0) == 1)
            times.append(time.perf_counter() - start)
        finally:
            worker.kill()
            worker.wait(30)
    return times


def report(label: str, times: list[float]) -> float:
    median = statistics.median(times)
    print(f"{label:58} median {median:5.2f} s   min {min(times):5.2f} s   max {max(times):5.2f} s")
    return median


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kbo-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o711)  # the worker runs as its own user, and reads the recipes here
        redis_server = RedisServer(tmp / "redis")
        redis_server.start()
        cluster = Cluster(tmp / "kbo", broker_url=redis_server.url, lease_seconds=LEASE)
        try:
            bare = bare_rounds(redis_server, tmp)
            (cluster.control / "sleep").write_text("3600")
            cluster.start_coordinator()
            cluster.start_worker("bench-worker", "alpha")
            cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
            wait_for(lambda: lease_expiry(cluster) > 0, 60, "the build to run")
            plain = kbo_rounds(cluster, hanging_submit=False)
            stuck = kbo_rounds(cluster, hanging_submit=True)
            lost = cluster.query("SELECT COUNT(*) FROM attempts WHERE state = 'lost'")[0][0]
        finally:
            cluster.stop_all()
            redis_server.stop()
    print(
        f"{ROUNDS} restarts each; the coordinator down {SILENT:.0f} s each time, "
        f"lease_seconds {LEASE}; Redis (AOF, appendfsync always)\n"
    )
    base = report("bare Celery: worker start -> first waiting task ran", bare)
    kbo = report("kbo: coordinator start -> first heartbeat accepted", plain)
    report("kbo: the same, a hanging `git clone` submit queued first", stuck)
    print(f"\nkbo / bare Celery: {kbo / base:.1f}x; leases lost over all restarts: {lost}")


if __name__ == "__main__":
    main()
