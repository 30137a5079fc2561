"""Sending messages through the broker: build jobs out, reports and requests in.

Everything a worker or a client says to the coordinator goes to one queue. Calls that
need an answer wait for the coordinator's reply through the result backend.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from kbo.errors import InfraError, KboError
from kbo.messaging.app import COORDINATOR_QUEUE, HEARTBEAT_QUEUE, build_queue, safe_url

# How long one wait for an answer lasts before asking again. After a Redis restart the
# backend's subscription can miss the answer, which is then found only by asking anew:
# a 30 s wait there kept a claimed build from starting its heartbeat, and its lease lapsed.
POLL_SECONDS = 1.0
# Publishing retries through a broker restart instead of giving up after three tries.
# The first look for an answer that call_until_answered waits for; each look after it
# waits twice as long, up to 0.2 s.
FIRST_LOOK_SECONDS = 0.005
RETRY_POLICY = {"max_retries": None, "interval_start": 0.5, "interval_step": 1, "interval_max": 5}


def check_broker(app: Celery) -> None:
    """Fail fast, in one line naming the broker (never its password), if it is down."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=2, interval_start=0.2, interval_step=0.5)
    except (OperationalError, OSError) as e:
        url = safe_url(app.conf.broker_url if app.conf.broker_url != "filesystem://" else "")
        raise InfraError(f"cannot reach the broker {url}: {e}") from None


def request(
    app: Celery,
    task: str,
    body: dict[str, Any],
    timeout: float,
    alive: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Ask the coordinator to act on ``body``; its refusal becomes the error it names."""
    reply: dict[str, Any] = call(app, task, body, timeout=timeout, alive=alive)
    if "error" in reply:
        error = KboError(reply["error"])
        error.exit_status = reply.get("exit_status", error.exit_status)
        raise error
    return reply


def send(
    app: Celery, task: str, *args: Any, retry: bool = True, queue: str = COORDINATOR_QUEUE
) -> str:
    """Queue a message for the coordinator; with ``retry``, wait out a broker outage."""
    result = app.send_task(task, args=args, queue=queue, retry=retry, retry_policy=RETRY_POLICY)
    return str(result.id)


def announce(app: Celery, worker: dict[str, Any]) -> None:
    """Say who this worker is, on the heartbeats' queue: it is news of a live worker, as a
    heartbeat is, and no slow work of the coordinator's holds it up or is held up by it."""
    send(app, "kbo.worker_announce", worker, retry=False, queue=HEARTBEAT_QUEUE)


def call(
    app: Celery,
    task: str,
    *args: Any,
    timeout: float | None = None,
    alive: Callable[[], None] | None = None,
) -> Any:
    """Ask the coordinator and wait for its answer; ``timeout=None`` waits for ever.
    ``alive`` is called every second while waiting, and raises if whoever should answer
    has died (embedded mode's local coordinator), so the wait ends at once."""
    result = app.send_task(
        task, args=args, queue=COORDINATOR_QUEUE, retry=True, retry_policy=RETRY_POLICY
    )
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = POLL_SECONDS if deadline is None else max(0.1, deadline - time.monotonic())
        if alive is not None:
            alive()
        try:
            answer = result.get(
                timeout=min(POLL_SECONDS, remaining),
                disable_sync_subtasks=False,
                propagate=True,
                interval=0.05,
            )
            result.forget()  # read once: a client polling for hours leaves nothing behind
            return answer
        except CeleryTimeout:
            if deadline is not None and time.monotonic() >= deadline:
                raise InfraError(
                    f"the coordinator did not answer within {timeout:.0f} s "
                    f"(is `kbo coordinator` running?); request {result.id} stays queued"
                ) from None
        except (OperationalError, ConnectionError, OSError):
            time.sleep(1)  # the broker or backend is restarting: keep waiting


class Pending:
    """A question sent to the coordinator whose answer is read later, without waiting."""

    def __init__(self, result: AsyncResult) -> None:
        self._result = result

    def answer(self) -> tuple[bool, Any]:
        """(True, the answer) once the coordinator has answered, read once and forgotten;
        (False, None) until then, while the broker cannot be reached, and when the task
        failed (nothing was done: asking again may do it)."""
        try:
            if not self._result.ready():
                return False, None
            answered, answer = self._result.successful(), self._result.result
            self._result.forget()
        except (OperationalError, ConnectionError, OSError):
            return False, None
        return (True, answer) if answered else (False, None)

    def forget(self) -> None:
        """No longer wanted; an answer that comes later expires with the other results."""
        with contextlib.suppress(OperationalError, ConnectionError, OSError):
            self._result.forget()


def ask(app: Celery, task: str, *args: Any, queue: str = COORDINATOR_QUEUE) -> Pending:
    """Queue a question for the coordinator, waiting out a broker outage, and return at
    once: its answer is read later (``Pending.answer``)."""
    return Pending(
        app.send_task(task, args=args, queue=queue, retry=True, retry_policy=RETRY_POLICY)
    )


def heartbeat(app: Celery, attempt_id: int, token: str, stage: str) -> Pending:
    """Renew a lease, on the heartbeats' own queue; the answer says whether it is held."""
    return ask(app, "kbo.heartbeat", attempt_id, token, stage, queue=HEARTBEAT_QUEUE)


def call_until_answered(
    app: Celery,
    task: str,
    *args: Any,
    first_wait: float,
    max_wait: float,
    give_up: Callable[[], bool] | None = None,
) -> tuple[bool, Any]:
    """Ask an idempotent question until the coordinator answers: each wait is bounded, and
    the question is sent again after it, the next wait twice as long (up to ``max_wait``),
    in case the first message was lost with a coordinator that died holding it. Returns
    (True, the first answer), or (False, None) as soon as ``give_up()`` is true."""
    asked: list[Pending] = []
    wait = first_wait
    try:
        while True:
            asked.append(ask(app, task, *args))
            deadline = time.monotonic() + wait
            # Most answers come within milliseconds: look again soon, then less often.
            pause = FIRST_LOOK_SECONDS
            while time.monotonic() < deadline:
                if give_up is not None and give_up():
                    return False, None
                for pending in asked:
                    answered, answer = pending.answer()
                    if answered:
                        asked.remove(pending)
                        return True, answer
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(2 * pause, 0.2)
            wait = min(2 * wait, max_wait)
    finally:
        for pending in asked:
            pending.forget()


def restore_held(app: Celery, queue: str) -> int:
    """Put back on ``queue`` the messages that a consumer of it took and never
    acknowledged; how many.

    For a queue with one consumer, at that consumer's start: the coordinator's, whose lock
    keeps it alone on its host. A coordinator killed while it handled a message leaves it in
    Redis's ``unacked`` hash, delivered again only after the visibility timeout, which is
    hours for the builds' sake. Handling it a second time is harmless: every coordinator
    task is idempotent. The filesystem broker keeps no such hash: a message it delivered
    and that was not acknowledged is in its queue again at once.
    """
    if not str(app.conf.broker_url).startswith("redis"):
        return 0
    restored = 0
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel  # kombu's Redis channel, untyped
        with channel.conn_or_acquire() as client:
            held = client.hgetall(channel.unacked_key)
        for tag, payload in held.items():
            try:
                routing_key = json.loads(payload)[2]
            except (ValueError, TypeError, IndexError, KeyError):
                continue  # not a message kombu wrote: not ours to move
            if routing_key == queue:
                channel.qos.restore_by_tag(tag, leftmost=True)
                restored += 1
    return restored


def publish_build(app: Celery, attempt_id: int, arch: str) -> None:
    app.send_task(
        "kbo.build",
        args=(attempt_id,),
        queue=build_queue(arch),
        retry=True,
        retry_policy=RETRY_POLICY,
    )
