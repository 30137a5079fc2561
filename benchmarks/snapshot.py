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
from orchestrator import snapshot, standings  # noqa: E402
from orchestrator.config import Config  # noqa: E402
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


def plan_once(config: Config, state: State) -> float:
    start = time.perf_counter()
    found = standings.compute(config, "kbuild-smoke", state)
    rows = state.results(str(found.repo), "kbuild-smoke")
    at_head = {
        (r["arch"], r["featureset"], r["flavour"]): r["state"]
        for r in rows
        if r["commit_sha"] == found.head
    }
    needs = snapshot.needs(
        {
            a: [(j.arch, j.featureset, j.flavour) for j in js]
            for a, js in found.jobs_at_head.items()
        },
        at_head,
    )
    chosen = snapshot.plan(
        found.arches, found.history, needs, in_flight=0, max_jobs=4, limits={}, now=time.time()
    )
    assert len(chosen.jobs) == 4
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = git_repo(Path(tmp))
        commits = history(repo)
        state = State(Path(tmp) / "kbo.sqlite")
        jobs = fill_state(state, repo, commits)
        config = Config(state_dir=tmp, repository=str(repo), branch="HEAD")
        standings._plan_at.cache_clear()
        baseline = []
        for _ in range(RUNS):
            start = time.perf_counter()
            load_plan(str(repo), commits[0])
            baseline.append(time.perf_counter() - start)
        cold = []
        for _ in range(RUNS):
            standings._plan_at.cache_clear()
            cold.append(plan_once(config, state))
        warm = [plan_once(config, state) for _ in range(RUNS * 4)]
        print(f"history: {len(commits)} commits, {jobs} recorded jobs (one per arch per commit)")
        for label, times in (
            ("baseline: one matrix at HEAD (kbo submit)", baseline),
            ("snapshot plan, cold (coordinator start)", cold),
            ("snapshot plan, warm (matrices cached)", warm),
        ):
            print(f"{label:44} median {statistics.median(times) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
