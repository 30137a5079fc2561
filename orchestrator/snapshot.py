"""Which jobs a snapshot run submits, and why. Pure: standings and job states in, a plan out.

A snapshot asks for what every tracked arch needs to be OK at HEAD: each job at HEAD
that has not succeeded and is not queued or running. When ``max_jobs`` limits how many
jobs may be in flight, arches go in this order:

1. arches over their ``max_staleness`` (always taken, even beyond the limit);
2. arches not yet tried at HEAD before arches whose build failed there: a retry of a
   failure only gets the capacity nobody else needs, even over ``max_staleness``;
3. most commits behind first (never built counts as the whole history), then the
   longest stale, then by name.

So alpha, hppa and mips cannot be starved by arches that build quickly: every run
takes the arches furthest behind, and an arch that waited climbs the order.

An arch that no live worker serves gets one pending job and no more: a snapshot queues
one of its jobs when none is queued or running, and nothing while one is. Its jobs take
no share of ``max_jobs``, which is for capacity that exists: otherwise an arch whose
hosts are gone would use the budget up for good.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

from kbo.errors import UserError
from kbo.orchestrator.staleness import Commit, Standing
from kbo.packaging.matrix import job_key

_LIMIT = re.compile(r"^(?P<arch>[a-z0-9*]+):(?P<number>\d+(\.\d+)?)(?P<days>d?)$")


def plural(count: int, word: str) -> str:
    """ "1 commit", "2 commits": the word for the count."""
    return word if count == 1 else f"{word}s"


@dataclass(frozen=True)
class Limit:
    """How far an arch may fall behind: commits, or days since its first unbuilt commit."""

    commits: int | None = None
    days: float | None = None

    def exceeded(self, behind: int, age_seconds: float) -> str | None:
        if self.commits is not None and behind > self.commits:
            return f"{behind} {plural(behind, 'commit')} behind, over max_staleness {self.commits}"
        if self.days is not None and age_seconds > self.days * 86400:
            return f"stale {age_seconds / 86400:.1f} days, over max_staleness {self.days:g}d"
        return None


def parse_limits(entries: Sequence[str], where: str) -> dict[str, Limit]:
    """``max_staleness`` entries: "alpha:5" (commits), "hppa:7d" (days), "*:20" (any arch)."""
    limits: dict[str, Limit] = {}
    for entry in entries:
        match = _LIMIT.match(entry.strip())
        if match is None:
            raise UserError(
                f"max_staleness entry {entry!r} is not ARCH:COMMITS or ARCH:DAYSd", where
            )
        arch, number = match["arch"], float(match["number"])
        limits[arch] = Limit(days=number) if match["days"] else Limit(commits=int(number))
    return limits


@dataclass(frozen=True)
class Lateness:
    """How far one arch is behind HEAD, and whether that is over its limit."""

    behind: int  # commits; never built counts as the whole history
    age_seconds: float  # since the first commit it has not built
    over_limit: str | None


def lateness(
    s: Standing, history: Sequence[Commit], limits: Mapping[str, Limit], now: float
) -> Lateness:
    behind = len(history) if s.commits_behind is None else s.commits_behind
    since = history[-1].timestamp if s.stale_since is None else s.stale_since
    age = max(0.0, now - since) if behind else 0.0
    limit = limits.get(s.name) or limits.get("*")
    over = limit.exceeded(behind, age) if limit is not None and behind else None
    return Lateness(behind, age, over)


@dataclass(frozen=True)
class Need:
    """One arch's jobs at HEAD that are not done and not in flight."""

    jobs: tuple[str, ...]  # job names, in matrix order
    failed_at_head: bool  # some of them already failed at HEAD
    given_up: tuple[str, ...] = ()  # failed at HEAD retry_failed times: left for a new commit


@dataclass
class Decision:
    arch: str
    state: str
    behind: int
    age_seconds: float
    jobs: tuple[str, ...] = ()  # what this snapshot submits for the arch
    waiting: tuple[str, ...] = ()  # what it needs but leaves for a later run
    over_limit: str | None = None
    retry: bool = False  # its jobs at HEAD failed: a retry, ranked after untried arches
    no_worker: bool = False  # no live worker serves the arch: one pending job at most
    why: str = ""

    @property
    def submitted(self) -> bool:
        return bool(self.jobs)


@dataclass
class SnapshotPlan:
    decisions: list[Decision] = field(default_factory=list)
    budget: int | None = None  # jobs this run could queue under max_jobs; None is no limit

    @property
    def jobs(self) -> list[str]:
        return [job for d in self.decisions for job in d.jobs]


def plan(
    standings: Sequence[Standing],
    history: Sequence[Commit],
    needs: Mapping[str, Need],
    *,
    in_flight: Mapping[str, int],
    max_jobs: int | None,
    limits: Mapping[str, Limit],
    now: float,
    unserved: Set[str] = frozenset(),
) -> SnapshotPlan:
    """Decide, arch by arch, what to submit; ``in_flight`` counts, per arch, the jobs
    already queued or running for this source and recipe, which use up ``max_jobs`` too,
    except those of the ``unserved`` arches, which no live worker serves."""
    busy = sum(n for arch, n in in_flight.items() if arch not in unserved)
    budget = None if max_jobs is None else max(0, max_jobs - busy)
    decisions = [_decision(s, history, needs, limits, now) for s in standings]
    left = math.inf if budget is None else budget
    for decision in sorted(decisions, key=_priority):
        need = needs.get(decision.arch)
        if need is None or not need.jobs:
            continue
        if decision.arch in unserved:
            pending = in_flight.get(decision.arch, 0)
            decision.no_worker = True
            decision.jobs = () if pending else need.jobs[:1]
            decision.waiting = need.jobs[len(decision.jobs) :]
            decision.why = (
                "no live worker serves it: its queued job waits for one"
                if pending
                else "no live worker serves it: one job queued to wait for one"
            )
            continue
        if decision.over_limit and not decision.retry:
            decision.jobs = need.jobs
            decision.why = f"{decision.over_limit}: always built"
            left -= len(need.jobs)
            continue
        take = int(min(left, len(need.jobs))) if left > 0 else 0
        decision.jobs, decision.waiting = need.jobs[:take], need.jobs[take:]
        left -= take
        decision.why = _why(decision, need)
    return SnapshotPlan(decisions, budget)


def _decision(
    s: Standing,
    history: Sequence[Commit],
    needs: Mapping[str, Need],
    limits: Mapping[str, Limit],
    now: float,
) -> Decision:
    late = lateness(s, history, limits, now)
    decision = Decision(s.name, s.state, late.behind, late.age_seconds, over_limit=late.over_limit)
    need = needs.get(s.name)
    decision.retry = need is not None and need.failed_at_head
    if need is None or not need.jobs:
        decision.why = (
            "OK at HEAD"
            if s.state == "OK"
            else "failed at HEAD: not retried until a new commit (retry_failed)"
            if need is not None and need.given_up
            else "every job at HEAD is queued or running"
        )
    return decision


def _priority(d: Decision) -> tuple[bool, bool, int, float, str]:
    return (d.over_limit is None or d.retry, d.retry, -d.behind, -d.age_seconds, d.arch)


def _why(decision: Decision, need: Need) -> str:
    reason = (
        "failed at HEAD: retried with spare capacity"
        if need.failed_at_head
        else f"{decision.behind} {plural(decision.behind, 'commit')} behind"
        if decision.state != "NEVER"
        else "never built"
    )
    if decision.waiting and decision.jobs:
        return f"{reason}; {len(decision.waiting)} jobs wait for capacity"
    if decision.waiting:
        return f"{reason}; waits for capacity (max_jobs)"
    return reason


def needs(
    jobs_at_head: Mapping[str, Sequence[tuple[str, str, str]]],
    states_at_head: Mapping[tuple[str, str, str], str],
    failed_builds: Mapping[tuple[str, str, str], int] | None = None,
    retry_failed: int | None = None,
) -> dict[str, Need]:
    """Per arch, its jobs ``(arch, featureset, flavour)`` at HEAD not succeeded and not in
    flight; ``states_at_head`` holds what kbo recorded for jobs at HEAD. A job that failed
    there ``retry_failed`` times (``failed_builds``: its builds that ended failed) is left
    out: the commit broke it, and building it again would not change that."""
    found = {}
    for arch, jobs in jobs_at_head.items():
        states = [(job, states_at_head.get(job)) for job in jobs]
        given_up = [
            job
            for job, state in states
            if state == "failed"
            and retry_failed is not None
            and (failed_builds or {}).get(job, 0) >= retry_failed
        ]
        wanted = [
            job
            for job, state in states
            if state not in ("succeeded", "queued", "running") and job not in given_up
        ]
        found[arch] = Need(
            tuple(job_key(*job) for job in wanted),
            any(states_at_head.get(job) == "failed" for job in wanted),
            tuple(job_key(*job) for job in given_up),
        )
    return found
