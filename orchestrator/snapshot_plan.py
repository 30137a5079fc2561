"""A snapshot's plan at HEAD: the standings read, then what to queue and why.

The coordinator runs it before queueing; an embedded ``kbo snapshot --dry-run`` runs it
on a read-only view of the state, with no services started.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kbo.config import Config
from kbo.orchestrator import snapshot, standings
from kbo.orchestrator.state import StateReader
from kbo.packaging import repository


def plan_at_head(
    config: Config, state: StateReader, recipe: str, max_jobs: int | None, now: float
) -> tuple[standings.Standings, snapshot.SnapshotPlan, dict[str, Any]]:
    """The standings, the plan, and the reply a client prints (``run`` still None)."""
    limits = snapshot.parse_limits(config.max_staleness, config.source)
    found = standings.compute(config, recipe, state)
    needs = snapshot.needs(
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
