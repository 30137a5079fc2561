"""Which workers count as live, and which tracked arches none of them serves.

A worker announces itself every ``lease_seconds / 3`` and each build's heartbeat counts,
so one not seen for ``LIVE_LEASES`` leases is gone. In embedded mode the command that
builds starts its own workers, so there every arch counts as served.
"""

from __future__ import annotations

from collections.abc import Iterable

from kbo.config import Config
from kbo.orchestrator.state import StateReader

LIVE_LEASES = 3


def live_since(config: Config, now: float) -> float:
    """Workers seen since then are live."""
    return now - LIVE_LEASES * config.lease_seconds


def unserved(
    config: Config, state: StateReader, arches: Iterable[str], now: float
) -> frozenset[str]:
    """The ``arches`` that no live worker serves (none in embedded mode)."""
    if config.embedded:
        return frozenset()
    return frozenset(arches) - state.arches_served(live_since(config, now))
