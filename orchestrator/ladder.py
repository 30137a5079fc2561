"""The ladder: recipes of rising cost that a snapshot climbs for each arch, cheapest first.

With ``ladder = ["linux-setup", "kbuild-smoke", "linux"]`` an arch is first checked by
its Debian configs (seconds), then by a compile of its core code (minutes), and only
then by the package build (hours). A rung runs at a commit only when the rung below
passed there for the whole arch: a failure on a cheap rung is the first signal, and
it stops the expensive rungs at that commit. Pure: the states of each rung at HEAD in,
where each arch stands out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# A rung's jobs for one arch at HEAD, summed up (see ``rung_state``).
PASSED, FAILED, BUSY, TODO = "passed", "failed", "busy", "todo"


@dataclass(frozen=True)
class Foothold:
    """Where an arch stands on the ladder at HEAD: ``rung`` is the index of the rung it
    works on (``len(ladder)`` when every rung passed), ``state`` that rung's state."""

    rung: int
    state: str

    @property
    def climbing(self) -> bool:
        """Whether the arch still has a rung to build at HEAD (not stopped by a failure)."""
        return self.state in (BUSY, TODO)


def rung_state(states: Sequence[str | None]) -> str:
    """One rung for one arch, from the states kbo recorded for its jobs at HEAD (None:
    never queued there): failed when any failed, passed when all succeeded, busy when
    the rest are queued or running, else there is work to queue."""
    if any(s == "failed" for s in states):
        return FAILED
    if states and all(s == "succeeded" for s in states):
        return PASSED
    if all(s in ("succeeded", "queued", "running") for s in states) and states:
        return BUSY
    return TODO


def foothold(rungs: Sequence[str]) -> Foothold:
    """The first rung not passed, given each rung's state bottom up."""
    for index, state in enumerate(rungs):
        if state != PASSED:
            return Foothold(index, state)
    return Foothold(len(rungs), PASSED)


def footholds(ladder_states: Mapping[str, Sequence[str]]) -> dict[str, Foothold]:
    """Per arch, its foothold from its rungs' states (``rung_state`` of each rung)."""
    return {arch: foothold(states) for arch, states in ladder_states.items()}


def describe(ladder: Sequence[str], rungs: Sequence[str]) -> str:
    """ "linux-setup OK, kbuild-smoke building": what an arch's rungs say at HEAD, up to
    the rung it stands on (the ones above it are not reached)."""
    words = {PASSED: "OK", FAILED: "FAILING", BUSY: "building", TODO: "to build"}
    held = foothold(rungs)
    parts = [f"{name} {words[state]}" for name, state in zip(ladder, rungs, strict=True)]
    return ", ".join(parts[: held.rung + 1])
