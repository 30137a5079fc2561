"""Since when the coordinator has been able to hear heartbeats, and the rule for lapsing
leases that follows from it.

A lease that ran out proves nothing while the coordinator could not hear: down, cut off
from the broker, or paused (SIGSTOP, a host suspended), the heartbeats of builds that
are alive wait in the queue. So the clock of listening starts when the coordinator's
heartbeat consumer (``orchestrator/heartbeats.py``) connects, stops when it loses the
broker, and starts again after a gap in the coordinator's own loops; a lease lapses only
once a whole lease period has been heard since.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("kbo.coordinator")


def boot_clock() -> float:
    """Seconds that go on through a pause of the process and a suspend of the host."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class Listening:
    """Since when heartbeats could have reached the coordinator without a break."""

    def __init__(self, clock: Callable[[], float] = boot_clock) -> None:
        self._clock = clock
        self._since: float | None = None  # None: not listening now
        self._lock = threading.Lock()

    def connected(self) -> None:
        """The coordinator consumes its queue (again): heartbeats can reach it from now."""
        with self._lock:
            self._since = self._clock()
        log.info("listening for heartbeats: no lease lapses for a whole lease period")

    def disconnected(self) -> None:
        """The coordinator lost the broker: it hears nothing until it connects again."""
        with self._lock:
            self._since = None

    def interrupted(self, seconds: float) -> None:
        """The coordinator itself stood still this long: what it consumed in that time
        says nothing about who is alive, so listening starts again now."""
        with self._lock:
            if self._since is None:
                return
            self._since = self._clock()
        log.warning(
            "the coordinator stood still for %.0f s: no lease lapses for a whole lease period",
            seconds,
        )

    def may_lapse_leases(self, lease_seconds: float) -> bool:
        """THE RULE: a lease that ran out lapses only once the coordinator has listened for
        a whole lease period without a break, so every live worker has had the time to
        renew it."""
        with self._lock:
            return self._since is not None and self._clock() - self._since >= lease_seconds
