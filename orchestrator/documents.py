"""The JSON documents of ``kbo status --json`` and ``kbo workers --json``, built once here
for the CLI and for ``kbo web``'s API alike, from the state database read-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kbo.config import Config
from kbo.orchestrator import ladder, live_workers
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
    # With a ladder: per arch, each rung's state at HEAD, bottom up (see kbo.orchestrator.ladder).
    rungs: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    bisections: list[dict[str, Any]] = field(default_factory=list)  # running ones, as JSON

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "head": self.head,
            "branch": self.branch,
            "recipe": self.recipe,
            "arches": [
                a.to_json(now)
                | {"no_worker": a.name in self.unserved}
                | ({"ladder": self.rungs[a.name]} if a.name in self.rungs else {})
                for a in self.arches
            ],
            "bisections": self.bisections,
        }

    def ladder_text(self, arch: str) -> str:
        """ "linux-setup OK, kbuild-smoke building" for the arch, or "" without a ladder."""
        rungs = self.rungs.get(arch)
        if not rungs:
            return ""
        return ladder.describe([r["recipe"] for r in rungs], [r["state"] for r in rungs])

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StatusReport:
        """The inverse of ``to_json`` (a client of ``kbo web``); a KeyError or TypeError
        for anything else."""
        arches = [Standing.from_json(a) for a in doc["arches"]]
        unserved = frozenset(a["name"] for a in doc["arches"] if a["no_worker"])
        rungs = {
            str(a["name"]): [
                {"recipe": str(r["recipe"]), "state": str(r["state"])} for r in a["ladder"]
            ]
            for a in doc["arches"]
            if a.get("ladder")
        }
        bisections = doc.get("bisections", [])  # none from a kbo web without bisection
        if not isinstance(bisections, list) or not all(isinstance(b, dict) for b in bisections):
            raise TypeError("bisections is not a list of objects")
        head, branch, recipe = str(doc["head"]), str(doc["branch"]), str(doc["recipe"])
        return cls(head, branch, recipe, arches, unserved, rungs, bisections)


def status(config: Config, recipe: str, state: StateReader, *, fetch: bool = True) -> StatusReport:
    """``fetch`` False reads a mirrored repository URL as last fetched."""
    from kbo.orchestrator.standings import compute

    found = compute(config, recipe, state, fetch=fetch)
    return report_of(config, found, state)


def rungs_of(
    config: Config, found: Standings, state: StateReader
) -> dict[str, list[dict[str, str]]]:
    """With a ladder whose top rung ``found`` reads: per arch, each rung's state at HEAD."""
    if len(config.ladder) < 2 or found.recipe != config.ladder[-1]:
        return {}
    from kbo.orchestrator.snapshot_plan import rung_states
    from kbo.orchestrator.standings import compute

    lower = [compute(config, r, state, fetch=False) for r in config.ladder[:-1]]
    states = [rung_states(f) for f in [*lower, found]]
    return {
        a.name: [
            {"recipe": r, "state": s[a.name]} for r, s in zip(config.ladder, states, strict=True)
        ]
        for a in found.arches
    }


def report_of(config: Config, found: Standings, state: StateReader) -> StatusReport:
    """The status document of standings already computed (``kbo web`` keeps them): with
    the ladder's rungs and the bisections running, read from ``state``."""
    bisections = [b.to_json() for b in state.bisections(running_only=True)]
    return StatusReport(
        found.head,
        config.branch,
        found.recipe,
        found.arches,
        found.unserved,
        rungs_of(config, found, state),
        bisections,
    )


def workers(config: Config, state: StateReader, now: float) -> list[dict[str, Any]]:
    """Every worker that announced itself, with whether it is live."""
    since = live_workers.live_since(config, now)
    return [
        w.to_json() | {"live": w.info.last_seen >= since}
        for w in state.workers(infra_since=now - INFRA_WINDOW)
    ]
