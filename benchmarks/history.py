"""A long packaging history and a state database of results on it, for the benchmarks.

The repository holds the 6.1 tree and COMMITS commits on branch main (made with
``git fast-import``: seconds, not minutes). The state is filled only through the state
API, as the coordinator fills it: a run per commit, then a claim and a report per attempt.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kbo.orchestrator.state import JobSpec, Run, State  # noqa: E402
from kbo.packaging.matrix import BuildJob  # noqa: E402

TREE = ROOT.parent / "shared" / "fixtures" / "linux-6.1.176-1"
GIT = ["git", "-c", "user.name=kbo", "-c", "user.email=kbo@localhost"]


def repository(tmp: Path, commits: int) -> tuple[Path, list[str]]:
    """The 6.1 packaging with ``commits`` commits on main; their shas, newest first."""
    repo = tmp / "linux"
    shutil.copytree(TREE / "debian", repo / "debian")
    subprocess.run([*GIT, "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "import"], check=True)
    stream = "".join(
        f"commit refs/heads/main\ncommitter kbo <kbo@localhost> {1_700_000_000 + i} +0000\n"
        f"data {len(f'change {i}')}\nchange {i}\n" + ("from refs/heads/main^0\n" if i == 0 else "")
        for i in range(commits - 1)
    )
    subprocess.run(
        [*GIT, "-C", str(repo), "fast-import", "--quiet"], input=stream.encode(), check=True
    )
    out = subprocess.run(
        [*GIT, "-C", str(repo), "rev-list", "--first-parent", "main"],
        capture_output=True,
        text=True,
        check=True,
    )
    return repo, out.stdout.split()


def fill(
    state: State,
    source: str,
    recipe: str,
    commits: list[str],
    matrix: list[BuildJob],
    jobs: list[BuildJob],
    outcome: Callable[[int, BuildJob], str | None],
) -> int:
    """Record ``jobs`` at each commit (index 0 is HEAD) whose ``outcome(age, job)`` is not
    None, and report that outcome; returns how many jobs were recorded. Every commit's
    ``matrix`` is kept too, as the coordinator keeps it when it records a run."""
    count = 0
    kept = [(j.arch, j.featureset, j.flavour, j.kernel_arch, j.default_flavour) for j in matrix]
    for age, sha in enumerate(commits):
        state.keep_matrix(source, sha, "6.1.176-1", kept)
        chosen = [(job, result) for job in jobs if (result := outcome(age, job)) is not None]
        if not chosen:
            continue
        specs = [
            JobSpec(source, sha, recipe, j.arch, j.featureset, j.flavour, j.kernel_arch)
            for j, _ in chosen
        ]
        run = Run(sha, "bench", "bench", source, "main", sha, recipe, "6.1.176-1")
        attempts = state.record_run(run, specs)
        for attempt, (_, result) in zip(attempts, chosen, strict=True):
            token = f"t{attempt}"
            state.claim(attempt, token, "bench", "bench", 300)
            state.finish(attempt, token, {"outcome": result})
        count += len(specs)
    return count
