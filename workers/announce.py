"""The worker tells the coordinator who it is: name, host, arches, executors, slots and
kbo version, when it starts and again every ``interval`` while it lives, so the
coordinator's inventory (`kbo workers`) knows an idle worker is still there."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Celery

from kbo import __version__, messaging

log = logging.getLogger("kbo.worker")


def announcement(
    name: str, host: str, executors: dict[str, tuple[str, ...]], slots: int
) -> dict[str, Any]:
    """What a worker says of itself (the coordinator checks every field)."""
    return {
        "name": name,
        "host": host,
        "arches": sorted(executors),
        "executors": {arch: list(e) for arch, e in sorted(executors.items())},
        "slots": slots,
        "version": __version__,
        "started_at": time.time(),
    }


def announce_forever(app: Celery, announce: dict[str, Any], interval: float) -> None:
    """Send ``announce`` now, then every ``interval`` from a daemon thread of this (the
    worker's main) process; a send that fails is tried again at the next tick."""

    def loop() -> None:
        while True:
            try:
                messaging.announce(app, announce)
            except Exception as e:  # the broker may be restarting
                log.warning("worker announcement not sent: %s", e)
            time.sleep(interval)

    threading.Thread(target=loop, daemon=True, name="kbo-announce").start()
