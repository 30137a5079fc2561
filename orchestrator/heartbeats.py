"""Heartbeats on a path of their own: the queue ``kbo.heartbeat``, consumed by a thread of
the coordinator's process, beside the Celery consumer of its main queue. Slow work there
(a submit whose `git clone` hangs) never holds up the renewal of a lease, and a report
waiting behind it keeps its lease, as its worker beats until the report is answered.

This thread's connection to the broker drives the clock of listening: a lease lapses
only once heartbeats have been heard here for a whole lease period.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from celery import states
from kombu.exceptions import OperationalError

from kbo.messaging.app import heartbeat_queue
from kbo.orchestrator.listening import boot_clock

if TYPE_CHECKING:
    from kbo.orchestrator.coordinator import Coordinator

log = logging.getLogger("kbo.coordinator")
# One wait for a message lasts this long, so a stop is seen soon.
DRAIN_SECONDS = 1.0


def hear_forever(coordinator: Coordinator, stop: threading.Event) -> None:
    """Consume heartbeats until ``stop``; through a broker outage, connect again."""
    app, listening = coordinator.app, coordinator.listening
    while not stop.is_set():
        connection: Any = app.connection_for_read()  # kombu's Connection, untyped
        try:
            connection.ensure_connection(max_retries=1)
            with connection.Consumer(
                [heartbeat_queue()],
                callbacks=[lambda body, message: _on_beat(coordinator, body, message)],
                accept=["json"],
                no_ack=True,  # a beat lost with a crash is made good by the next
            ):
                listening.connected()
                last = boot_clock()
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):  # nothing came: wait again
                        connection.drain_events(timeout=DRAIN_SECONDS)
                    now = boot_clock()
                    if now - last > 2 * coordinator.config.sweep_seconds + DRAIN_SECONDS:
                        listening.interrupted(now - last)  # a beat stalled (a locked database?)
                    last = now
        except (*connection.connection_errors, OperationalError, OSError) as e:
            listening.disconnected()
            log.warning("heartbeats: lost the broker (%s); connecting again", e)
            stop.wait(1.0)
        except Exception:  # never the end of hearing: log it, connect again
            listening.disconnected()
            log.exception("heartbeats: consuming failed; connecting again")
            stop.wait(1.0)
        finally:
            listening.disconnected()
            connection.release()


def _on_beat(coordinator: Coordinator, body: Any, message: Any) -> None:
    """One Celery task message of ``kbo.heartbeat``: renew, then store the answer where
    the worker reads it; or of ``kbo.worker_announce``: note the worker, seen now (a
    repeat only moves its last seen). Any other message is dropped and logged."""
    task_id, task = message.headers.get("id"), message.headers.get("task")
    try:
        if task not in ("kbo.heartbeat", "kbo.worker_announce") or not isinstance(task_id, str):
            raise TypeError("not a heartbeat or a worker's announcement")
        args, kwargs, _ = body
        if task == "kbo.worker_announce":
            coordinator.worker_announce(*args, **kwargs)
            return
        answer = coordinator.heartbeat(*args, **kwargs)
    except Exception as e:  # forged or garbled, or the database is locked: the next beat
        log.warning("heartbeats: dropped a message (%s)", e)
        return
    coordinator.app.backend.store_result(task_id, answer, states.SUCCESS)
