"""Time snapshot planning as the coordinator does it, against a long history.

A repository of the 6.1 tree with COMMITS commits, and a state database in which every
arch built at every commit except the last few (so each arch is some commits behind).
Figures: planning cold (a coordinator just started: every commit's matrix read) and
warm (its cache of matrices per commit filled), against the baseline of reading the
matrix once at HEAD, which is what `kbo submit` costs.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.matrix import git_repo  # noqa: E402
from orchestrator import standings  # noqa: E402
from orchestrator.celery_app import make_app  # noqa: E402
from orchestrator.config import Config  # noqa: E402
from orchestrator.coordinator import Coordinator  # noqa: E402
from orchestrator.plan import load_plan  # noqa: E402
from orchestrator.state import JobKey, State  # noqa: E402

COMMITS = 100
RUNS = 5


def history(repo: Path) -> list[str]:
    env = ["-c", "user.name=kbo", "-c", "user.email=kbo@localhost"]
    for i in range(COMMITS - 1):
        subprocess.run(
            ["git", *env, "-C", str(repo), "commit", "-q", "--allow-empty", "-m", f"c{i}"],
            check=True,
        )
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--first-parent", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def fill_state(state: State, repo: Path, commits: list[str]) -> int:
    """Every arch succeeded at every commit but the newest (arch index mod 5)."""
    jobs = standings._jobs_at(str(repo), commits[0], True)
    arches = sorted(jobs)
    count = 0
    for age, sha in enumerate(commits):
        keys = [
            JobKey(str(repo), sha, "kbuild-smoke", j.arch, j.featureset, j.flavour)
            for i, arch in enumerate(arches)
            if age >= i % 5
            for j in jobs[arch]
        ]
        state.record_run({"id": sha, "submitter": "bench", "reason": "bench", "source": str(repo),
                          "rev": "main", "commit": sha, "recipe": "kbuild-smoke",
                          "version": "6.1.176-1"}, keys)  # fmt: skip
        count += len(keys)
    with state.transaction() as db:
        db.execute("UPDATE jobs SET state = 'succeeded'")
        db.execute("UPDATE attempts SET state = 'succeeded'")
    return count


def plan_once(coordinator: Coordinator) -> float:
    """The coordinator's own snapshot, as a dry run: everything but recording and sending."""
    start = time.perf_counter()
    reply = coordinator.snapshot({"dry_run": True, "max_jobs": 4})
    assert sum(len(d["jobs"]) for d in reply["decisions"]) == 4, reply
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = git_repo(Path(tmp))
        commits = history(repo)
        config = Config(state_dir=tmp, repository=str(repo), branch="HEAD")
        jobs = fill_state(State(config.database), repo, commits)
        coordinator = Coordinator(config, make_app(config))
        standings._plan_at.cache_clear()
        baseline = []
        for _ in range(RUNS):
            start = time.perf_counter()
            load_plan(str(repo), commits[0])
            baseline.append(time.perf_counter() - start)
        cold = []
        for _ in range(RUNS):
            standings._plan_at.cache_clear()
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
