"""Time the readers of a long history: ``kbo status``, the status page, ``snapshot --dry-run``.

For each size, a repository with COMMITS commits and a state database of 50 jobs per
commit (the whole 6.1 matrix, recipe ``linux``), filled through the state API. Every job
succeeded at every commit but HEAD, except alpha's, which failed at the newest
FAILING commits (so alpha is FAILING and is read that far back). Baselines in the same
run: the bare interpreter, and ``kbo --help`` (the CLI's own start-up).

Figures: ``kbo status`` and ``kbo status --json`` (wall, separate processes), the status
page rewrite the coordinator does after each report (in process), and ``kbo snapshot
--dry-run`` embedded and against a running coordinator on redis-server.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import history  # noqa: E402
from kbo.config import Config  # noqa: E402
from kbo.messaging.app import make_app  # noqa: E402
from kbo.orchestrator.coordinator import Coordinator  # noqa: E402
from kbo.orchestrator.state import State  # noqa: E402
from kbo.packaging.package import read_package  # noqa: E402
from tests.services import Cluster, RedisServer  # noqa: E402

KBO = Path(sys.executable).parent / "kbo"
SIZES = (200, 2000)  # commits; x 50 jobs = 10,000 and 100,000 jobs
FAILING = 100
RUNS = 7


def median_ms(times: Sequence[float]) -> str:
    return f"{statistics.median(times) * 1000:8.1f} ms"


def wall(argv: Sequence[str | Path], env: dict[str, str], runs: int = RUNS) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        assert result.returncode in (0, 1), result.stderr
    return times


def in_process(call: Callable[[], object], runs: int = RUNS) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def outcome(age: int, job: object) -> str | None:
    if age == 0:
        return None  # HEAD: nothing built yet
    return "failed" if job.arch == "alpha" and age <= FAILING else "succeeded"  # type: ignore[attr-defined]


def measure(commits: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        root = Path(tmp)
        repo, shas = history.repository(root, commits)
        jobs = read_package(str(repo), shas[0]).matrix.jobs
        settings = {
            "state_dir": str(root / "state"),
            "repository": str(repo),
            "branch": "main",
            "default_recipe": "linux",
            "status_page": str(root / "status.html"),
        }
        config = Config(**settings)  # type: ignore[arg-type]
        started = time.perf_counter()
        state = State(config.database)
        count = history.fill(state, str(repo), "linux", shas, jobs, jobs, outcome)
        state.close()
        print(
            f"\n{commits} commits, {count} jobs (filled through the state API in "
            f"{time.perf_counter() - started:.0f} s)"
        )
        toml = root / "kbo.toml"
        toml.write_text("".join(f'{k} = "{v}"\n' for k, v in settings.items()))
        env = os.environ | {"KBO_CONFIG": str(toml)}
        figures["kbo status"] = wall([KBO, "status"], env)
        figures["kbo status --json"] = wall([KBO, "status", "--json"], env)
        coordinator = Coordinator(config, make_app(config))
        coordinator.write_status_page(fetch=False)  # a coordinator that has just started
        figures["status page rewrite (coordinator)"] = in_process(
            lambda: coordinator.write_status_page(fetch=False)
        )
        figures["kbo snapshot --dry-run (embedded)"] = wall(
            [KBO, "snapshot", "--dry-run"], env, runs=3
        )
        redis = RedisServer(root / "redis")
        redis.start()
        cluster = Cluster(
            root / "farm", broker_url=redis.url, repo=repo, tracked_arches=[], **settings
        )
        try:
            cluster.start_coordinator()
            figures["kbo snapshot --dry-run (redis)"] = wall(
                [KBO, "snapshot", "--dry-run"], cluster.env, runs=3
            )
        finally:
            cluster.stop_all()
            redis.stop()
    for label, times in figures.items():
        print(f"  {label:40} median {median_ms(times)}   min {min(times) * 1000:8.1f} ms")
    return figures


def main() -> None:
    env = dict(os.environ)
    print("baselines:")
    print(f"  {'python3 -c pass':40} median {median_ms(wall([sys.executable, '-c', 'pass'], env))}")
    print(f"  {'kbo --help':40} median {median_ms(wall([KBO, '--help'], env))}")
    results = {size: measure(size) for size in SIZES}
    small, large = (results[s] for s in SIZES)
    print(f"\ngrowth from {SIZES[0] * 50} to {SIZES[1] * 50} jobs (median, large / small):")
    for label in small:
        ratio = statistics.median(large[label]) / statistics.median(small[label])
        print(f"  {label:40} x{ratio:.2f}")


if __name__ == "__main__":
    main()
