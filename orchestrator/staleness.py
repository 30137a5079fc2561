"""Which arches are not built since the last commit, and how far behind they are. Pure.

An arch is OK when every flavour it has in the matrix at HEAD built successfully at
HEAD. A commit that adds a flavour therefore makes the arch STALE until that flavour
builds. FAILING (the newest result of some flavour is a failure) outranks BUILDING
(a job in flight at HEAD), which outranks STALE (an older commit built completely)
and NEVER (no commit ever did). Only a ``failed`` build counts as a failure: an
``infra-error`` or ``dep-wait`` is the host's, and leaves the flavour STALE or NEVER.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kbo.orchestrator.state.records import HostProblem, JobResult

STATES = ("OK", "FAILING", "BUILDING", "STALE", "NEVER")
Flavour = tuple[str, str]  # (featureset, flavour)


@dataclass(frozen=True)
class Commit:
    sha: str
    timestamp: int


@dataclass
class Standing:
    """Where one arch (or one flavour of it) stands against HEAD."""

    name: str
    state: str
    last_good: Commit | None
    commits_behind: int | None
    stale_since: int | None
    failing_commit: str | None = None  # the first commit of the current failure
    flavours: list[Standing] = field(default_factory=list)
    first_error: str | None = None  # of the failure at failing_commit, with its log
    log: str | None = None
    # Why it is not built at HEAD when its host is to blame (infra-error, dep-wait): never
    # FAILING for that. An arch's is that of its first flavour with one.
    host_problem: HostProblem | None = None
    # Its job at HEAD was cancelled (`kbo cancel`): by whom. An arch's is its first
    # cancelled flavour's.
    cancelled: str | None = None

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "last_good": None
            if self.last_good is None
            else {"commit": self.last_good.sha, "timestamp": self.last_good.timestamp},
            "commits_behind": self.commits_behind,
            "stale_since": self.stale_since,
            "age_seconds": None if self.stale_since is None else int(now - self.stale_since),
            "failing_commit": self.failing_commit,
            "first_error": self.first_error,
            "log": self.log,
            "host_problem": None if self.host_problem is None else self.host_problem.to_json(),
            "cancelled": self.cancelled,
        } | ({"flavours": [f.to_json(now) for f in self.flavours]} if self.flavours else {})

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Standing:
        """The inverse of ``to_json`` (a client of ``kbo web``); a KeyError or TypeError
        for anything else."""
        good, problem = doc["last_good"], doc["host_problem"]
        return cls(
            name=str(doc["name"]),
            state=str(doc["state"]),
            last_good=None if good is None else Commit(str(good["commit"]), int(good["timestamp"])),
            commits_behind=doc["commits_behind"],
            stale_since=doc["stale_since"],
            failing_commit=doc["failing_commit"],
            flavours=[cls.from_json(f) for f in doc.get("flavours", [])],
            first_error=doc["first_error"],
            log=doc["log"],
            host_problem=None if problem is None else HostProblem(**problem),
            cancelled=doc["cancelled"],
        )


def assess(
    arch: str,
    history: Sequence[Commit],
    required_at: Callable[[str], set[Flavour]],
    results: Iterable[JobResult],
) -> Standing:
    """Standing of ``arch``; ``history`` is newest first, ``required_at`` gives the
    arch's flavours in the matrix at a commit."""
    position = {commit.sha: i for i, commit in enumerate(history)}
    by_commit: dict[str, dict[Flavour, str]] = {}
    for r in results:
        if r.arch == arch and r.commit in position:
            by_commit.setdefault(r.commit, {})[(r.featureset, r.flavour)] = r.state
    newest_first = sorted(by_commit, key=position.__getitem__)
    required = sorted(required_at(history[0].sha))

    flavours = [
        _flavour(f"{arch}/{fs}/{fl}", (fs, fl), history, position, newest_first, by_commit)
        for fs, fl in required
    ]
    last_good = next(
        (
            sha
            for sha in newest_first
            if (need := required_at(sha))
            and all(by_commit[sha].get(f) == "succeeded" for f in need)
        ),
        None,
    )
    failing_since = [
        f.failing_commit for f in flavours if f.failing_commit and f.state == "FAILING"
    ]
    failing = max(failing_since, key=position.__getitem__, default=None)  # the oldest
    in_flight = any(s in ("queued", "running") for s in by_commit.get(history[0].sha, {}).values())
    standing = _standing(arch, history, position, last_good, failing, in_flight)
    standing.flavours = flavours
    return standing


def _flavour(
    name: str,
    key: Flavour,
    history: Sequence[Commit],
    position: dict[str, int],
    newest_first: list[str],
    by_commit: dict[str, dict[Flavour, str]],
) -> Standing:
    states = [(sha, by_commit[sha].get(key)) for sha in newest_first]
    last_good = next((sha for sha, s in states if s == "succeeded"), None)
    done = [(sha, s) for sha, s in states if s in ("succeeded", "failed")]
    streak = [sha for sha, _ in itertools.takewhile(lambda d: d[1] == "failed", done)]
    failing = streak[-1] if streak else None  # the first commit of the current failure
    in_flight = by_commit.get(history[0].sha, {}).get(key) in ("queued", "running")
    return _standing(name, history, position, last_good, failing, in_flight)


def _standing(
    name: str,
    history: Sequence[Commit],
    position: dict[str, int],
    last_good: str | None,
    failing: str | None,
    in_flight: bool,
) -> Standing:
    good = None if last_good is None else history[position[last_good]]
    behind = None if last_good is None else position[last_good]
    since = history[behind - 1].timestamp if behind else None
    if behind == 0:
        state = "OK"
    elif failing:
        state = "FAILING"
    elif in_flight:
        state = "BUILDING"
    else:
        state = "STALE" if good else "NEVER"
    return Standing(name, state, good, behind, since, failing)
