"""Which commit a bisection builds next, or what it found (pure).

A bisection looks for the first bad commit of one job key between a good commit A and a
bad commit B, over ``git rev-list --first-parent A..B``: the commits of B's first-parent
line that A lacks, oldest first, B last. A merge is one step of that line, so a culprit
that is a merge says the breakage came in with the branch it merged. Each commit's
result is one of:

- ``good``: the job succeeded there;
- ``bad``: it failed with the same first error (after ``reports.normalise``) as at B;
- ``skip``: it ended another way (another first error, infra-error, dep-wait, lost,
  cancelled): it says nothing, as ``git bisect skip``;
- ``pending``: queued or running; anything else is unknown.

The planner assumes, as ``git bisect`` does, that the line goes good then bad once. It
takes the newest good commit before the oldest bad one as the lower bound, builds the
unknown commit nearest the middle between them, and stops when no unknown commit is
left between the bounds (or ``max_steps`` builds were made).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Result = Literal["good", "bad", "skip", "pending"]
RESULTS = ("good", "bad", "skip", "pending")
# How a bisection ends: the first bad commit is known ("found"), only skipped commits are
# left between the bounds ("skipped"), or it ran out of builds ("gave-up").
Ending = Literal["found", "skipped", "gave-up"]


@dataclass(frozen=True)
class Plan:
    """What to do next: build ``next`` (None while a build is pending, or when done),
    or the verdict (``ending`` set). ``good`` is the newest good commit before ``bad``,
    the oldest bad one (None: A, the bisection's own good commit); ``culprit`` is the
    first bad commit when ``ending`` is "found"; ``skipped`` every commit found skipped,
    oldest first (when ``ending`` is "skipped", the first bad commit is one of those
    between ``good`` and ``bad``, or ``bad``)."""

    next: str | None
    ending: Ending | None
    good: str | None
    bad: str
    culprit: str | None
    skipped: tuple[str, ...]
    pending: tuple[str, ...]

    @property
    def done(self) -> bool:
        return self.ending is not None


def plan(
    commits: Sequence[str],
    results: Mapping[str, Result],
    builds: int,
    max_steps: int,
) -> Plan:
    """The next step of a bisection over ``commits`` (A..B, oldest first; B last, and
    taken as bad whatever ``results`` says), given what is known of each commit and how
    many builds the bisection has made so far."""
    if not commits:
        raise ValueError("a bisection needs at least its bad commit")
    known = {**results, commits[-1]: "bad"}
    hi = next(i for i, c in enumerate(commits) if known.get(c) == "bad")
    lo = max((i for i in range(hi) if known.get(commits[i]) == "good"), default=-1)
    between = commits[lo + 1 : hi]
    good = commits[lo] if lo >= 0 else None
    bad = commits[hi]
    skipped = tuple(c for c in commits if known.get(c) == "skip")
    pending = tuple(c for c in between if known.get(c) == "pending")
    unknown = [i for i in range(lo + 1, hi) if known.get(commits[i]) not in RESULTS]
    if not between:
        return Plan(None, "found", good, bad, bad, skipped, ())
    if not unknown and not pending:
        return Plan(None, "skipped", good, bad, None, skipped, ())
    if pending or not unknown:
        return Plan(None, None, good, bad, None, skipped, pending)
    if builds >= max_steps:
        return Plan(None, "gave-up", good, bad, None, skipped, ())
    middle = (lo + hi) / 2
    choice = min(unknown, key=lambda i: (abs(i - middle), i))
    return Plan(commits[choice], None, good, bad, None, skipped, ())


def most_builds(count: int) -> int:
    """The builds a bisection over ``count`` commits (B included, which is known bad)
    takes when nothing is skipped: ceil(log2(count))."""
    return max(0, (count - 1).bit_length()) if count > 1 else 0
