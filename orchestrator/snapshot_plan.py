"""A snapshot's plan at HEAD: the standings read, then what to queue and why.

The coordinator runs it before queueing; an embedded ``kbo snapshot --dry-run`` runs it
on a read-only view of the state, with no services started.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kbo.config import Config
from kbo.orchestrator import ladder, snapshot, standings
from kbo.orchestrator.state import StateReader
from kbo.packaging import repository


def plan_at_head(
    config: Config, state: StateReader, recipe: str, max_jobs: int | None, now: float
) -> tuple[standings.Standings, snapshot.SnapshotPlan, dict[str, Any]]:
    """The standings, the plan, and the reply a client prints (``run`` still None)."""
    limits = snapshot.parse_limits(config.max_staleness, config.source)
    found = standings.compute(config, recipe, state)
    needs = _needs(config, state, recipe, found)
    if max_jobs is None:
        max_jobs = config.snapshot_max_jobs or None
    chosen = snapshot.plan(
        found.arches,
        found.history,
        needs,
        in_flight=found.in_flight,
        max_jobs=max_jobs,
        limits=limits,
        now=now,
        unserved=found.unserved,
    )
    reply: dict[str, Any] = {
        "head": found.head,
        "branch": config.branch,
        "version": found.version,
        "recipe": recipe,
        "budget": chosen.budget,
        "decisions": [dataclasses.asdict(d) for d in chosen.decisions],
        "run": None,
    }
    return found, chosen, reply


def _needs(
    config: Config, state: StateReader, recipe: str, found: standings.Standings
) -> dict[str, snapshot.Need]:
    return snapshot.needs(
        {
            a: [(j.arch, j.featureset, j.flavour) for j in js]
            for a, js in found.jobs_at_head.items()
        },
        found.states_at_head,
        state.failed_builds_at(
            repository.source_id(config.repository), recipe, found.head, sorted(found.jobs_at_head)
        ),
        config.retry_failed,
    )


@dataclasses.dataclass(frozen=True)
class Rung:
    """One rung of a ladder snapshot: its recipe, its standings at HEAD, what it queues."""

    recipe: str
    found: standings.Standings
    chosen: snapshot.SnapshotPlan


def rung_states(found: standings.Standings) -> dict[str, str]:
    """Per tracked arch, what its jobs of this rung's recipe at HEAD sum up to."""
    return {
        arch: ladder.rung_state(
            [found.states_at_head.get((j.arch, j.featureset, j.flavour)) for j in jobs]
        )
        for arch, jobs in found.jobs_at_head.items()
    }


def plan_ladder(
    config: Config, state: StateReader, max_jobs: int | None, now: float, *, fetch: bool = True
) -> tuple[list[Rung], dict[str, Any]]:
    """Each rung's plan at HEAD, cheapest first, and the reply a client prints: an arch's
    jobs are planned on the rung it stands on only, and cheaper rungs take ``max_jobs``
    first, across all arches."""
    limits = snapshot.parse_limits(config.max_staleness, config.source)
    found_all = [
        standings.compute(config, recipe, state, fetch=fetch and i == 0)
        for i, recipe in enumerate(config.ladder)
    ]
    states = [rung_states(found) for found in found_all]
    held = ladder.footholds({a: [s[a] for s in states] for a in found_all[0].jobs_at_head})
    in_flight: dict[str, int] = {}
    for found in found_all:
        for arch, count in found.in_flight.items():
            in_flight[arch] = in_flight.get(arch, 0) + count
    left = max_jobs if max_jobs is not None else (config.snapshot_max_jobs or None)
    rungs, rows = [], {}
    for i, (recipe, found) in enumerate(zip(config.ladder, found_all, strict=True)):
        needs = _needs(config, state, recipe, found)
        mine = {a: n if held[a].rung == i else snapshot.Need((), False) for a, n in needs.items()}
        chosen = snapshot.plan(
            found.arches,
            found.history,
            mine,
            in_flight=in_flight,
            max_jobs=left,
            limits=limits,
            now=now,
            unserved=found.unserved,
        )
        if left is not None:
            left = max(0, left - len(chosen.jobs))
        for decision in chosen.decisions:
            at = held[decision.arch]
            if at.rung == i or (i == len(config.ladder) - 1 and at.rung == i + 1):
                row = dataclasses.asdict(decision) | {"recipe": recipe}
                row["why"] = (
                    f"{recipe} failed at HEAD: the rungs above wait for a new commit"
                    if at.state == ladder.FAILED
                    else f"{recipe}: {decision.why}"
                )
                rows[decision.arch] = row
        rungs.append(Rung(recipe, found, chosen))
    first = found_all[0]
    reply: dict[str, Any] = {
        "head": first.head,
        "branch": config.branch,
        "version": first.version,
        "recipe": " > ".join(config.ladder),
        "budget": rungs[0].chosen.budget,
        "decisions": [rows[a.name] for a in first.arches],
        "run": None,
        "runs": [],
    }
    return rungs, reply
