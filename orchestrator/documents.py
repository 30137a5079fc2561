"""The JSON documents of ``kbo status --json`` and ``kbo workers --json``, built once here
for the CLI and for ``kbo web``'s API alike, from the state database read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbo.config import Config
from kbo.orchestrator import live_workers
from kbo.orchestrator.staleness import Standing

if TYPE_CHECKING:  # the CLI imports this module at start-up; the reader when it reads
    from kbo.orchestrator.standings import Standings
    from kbo.orchestrator.state import StateReader

INFRA_WINDOW = 86400  # infra-errors counted over the last day


@dataclass(frozen=True)
class StatusReport:
    """Every tracked arch's standing against HEAD, and the arches no live worker serves
    (none in embedded mode, whose workers are started for each command that builds)."""

    head: str
    branch: str
    recipe: str
    arches: list[Standing]
    unserved: frozenset[str]

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "head": self.head,
            "branch": self.branch,
            "recipe": self.recipe,
            "arches": [
                a.to_json(now) | {"no_worker": a.name in self.unserved} for a in self.arches
            ],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StatusReport:
        """The inverse of ``to_json`` (a client of ``kbo web``); a KeyError or TypeError
        for anything else."""
        arches = [Standing.from_json(a) for a in doc["arches"]]
        unserved = frozenset(a["name"] for a in doc["arches"] if a["no_worker"])
        return cls(str(doc["head"]), str(doc["branch"]), str(doc["recipe"]), arches, unserved)


def status(config: Config, recipe: str, state: StateReader, *, fetch: bool = True) -> StatusReport:
    """``fetch`` False reads a mirrored repository URL as last fetched."""
    from kbo.orchestrator.standings import compute

    return report_of(config, compute(config, recipe, state, fetch=fetch))


def report_of(config: Config, found: Standings) -> StatusReport:
    """The status document of standings already computed (``kbo web`` keeps them)."""
    return StatusReport(found.head, config.branch, found.recipe, found.arches, found.unserved)


def workers(config: Config, state: StateReader, now: float) -> list[dict[str, Any]]:
    """Every worker that announced itself, with whether it is live."""
    since = live_workers.live_since(config, now)
    return [
        w.to_json() | {"live": w.info.last_seen >= since}
        for w in state.workers(infra_since=now - INFRA_WINDOW)
    ]
