"""Where a failure is measured from: of the job key's newest successes, the nearest
ancestor of the failing commit (fewest commits between them). A success on another
branch, however recent, says nothing of this one. The failure mail's suspects and a
bisection's range both start there, so they always agree."""

from __future__ import annotations

from pathlib import Path

from kbo.orchestrator.state import Job, StateReader
from kbo.packaging import repository

MAX_SUCCESSES = 50  # the newest successes of the key looked at


def nearest_good(state: StateReader, repo: Path, job: Job) -> str | None:
    """The commit of the job key's nearest earlier success, or None."""
    ancestors = [
        sha
        for sha in dict.fromkeys(state.successes(job, MAX_SUCCESSES))
        if sha != job.commit and repository.is_ancestor(repo, sha, job.commit)
    ]
    if not ancestors:
        return None
    return min(ancestors, key=lambda sha: repository.count_commits(repo, sha, job.commit))
