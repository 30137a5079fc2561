"""Maintainers' requests sent on to the coordinator: the same tasks and bodies as the CLI
verbs send (``kbo.submit``, ``kbo.retry``, ``kbo.cancel``), with the token's name as who
asked. The coordinator stays the one writer."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any

from kbo.config import Config
from kbo.errors import EXIT_BAD_INPUT, KboError

if TYPE_CHECKING:
    from celery import Celery


class Refused(Exception):
    """The coordinator refused the request (bad input), or could not be asked."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Relay:
    """One Celery app per service. Requests go one at a time: the coordinator answers
    one at a time anyway, and Celery's result consumer is not made for threads."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._app: Celery | None = None
        self._lock = threading.Lock()

    def _ask(self, task: str, body: dict[str, Any], refused: int) -> dict[str, Any]:
        from kbo import messaging
        from kbo.messaging.app import make_app

        with self._lock:
            if self._app is None:
                self._app = make_app(self.config)
            try:
                messaging.check_broker(self._app)  # else sending waits out an outage
                return messaging.request(self._app, task, body, timeout=self.config.reply_seconds)
            except KboError as e:
                status = refused if e.exit_status == EXIT_BAD_INPUT else 503
                raise Refused(status, str(e)) from None

    def submit(self, request: dict[str, Any], by: str) -> dict[str, Any]:
        body = request | {"id": str(uuid.uuid4()), "submitter": by}
        return self._ask("kbo.submit", body, 422)

    def retry(self, job: int, by: str) -> dict[str, Any]:
        return self._ask("kbo.retry", {"job": job, "by": by, "id": str(uuid.uuid4())}, 409)

    def cancel(self, kind: str, target: int | str, by: str) -> dict[str, Any]:
        return self._ask("kbo.cancel", {kind: target, "by": by}, 409)
