"""Time snapshot planning as the coordinator does it, against a long history.

A repository of the 6.1 tree with COMMITS commits, and a state database in which every
arch built at every commit except the last few (so each arch is some commits behind).
Figures: planning cold (a coordinator just started: matrices come from the state
database, or from git for a commit never read) and warm (its own cache filled), against
the baseline of reading the matrix once at HEAD from git.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import history  # noqa: E402
from kbo.config import Config  # noqa: E402
from kbo.messaging.app import make_app  # noqa: E402
from kbo.orchestrator import matrices  # noqa: E402
from kbo.orchestrator.coordinator import Coordinator  # noqa: E402
from kbo.orchestrator.state import State  # noqa: E402
from kbo.packaging.matrix import representatives  # noqa: E402
from kbo.packaging.package import read_package  # noqa: E402

COMMITS = 100
RUNS = 5


def fill_state(state: State, repo: Path, commits: list[str]) -> int:
    """Every arch succeeded at every commit but the newest (arch index mod 5)."""
    matrix = read_package(str(repo), commits[0]).matrix.jobs
    jobs = representatives(matrix)
    order = {arch: i for i, arch in enumerate(sorted({j.arch for j in jobs}))}
    return history.fill(
        state,
        str(repo),
        "kbuild-smoke",
        commits,
        matrix,
        jobs,
        lambda age, job: "succeeded" if age >= order[job.arch] % 5 else None,
    )


def plan_once(coordinator: Coordinator) -> float:
    """The coordinator's own snapshot, as a dry run: everything but recording and sending."""
    start = time.perf_counter()
    reply = coordinator.snapshot({"dry_run": True, "max_jobs": 4})
    assert sum(len(d["jobs"]) for d in reply["decisions"]) == 4, reply
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo, commits = history.repository(Path(tmp), COMMITS)
        config = Config(state_dir=tmp, repository=str(repo), branch="main")
        jobs = fill_state(State(config.database), repo, commits)
        coordinator = Coordinator(config, make_app(config))
        matrices._read.cache_clear()
        baseline = []
        for _ in range(RUNS):
            start = time.perf_counter()
            read_package(str(repo), commits[0])
            baseline.append(time.perf_counter() - start)
        cold = []
        for _ in range(RUNS):
            matrices._read.cache_clear()
            cold.append(plan_once(coordinator))
        warm = [plan_once(coordinator) for _ in range(RUNS * 4)]
        print(f"history: {len(commits)} commits, {jobs} recorded jobs (one per arch per commit)")
        for label, times in (
            ("baseline: one matrix at HEAD (kbo submit)", baseline),
            ("snapshot plan, cold (coordinator start)", cold),
            ("snapshot plan, warm (matrices cached)", warm),
        ):
            print(f"{label:44} median {statistics.median(times) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
