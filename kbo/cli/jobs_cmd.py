"""``kbo cancel`` and ``kbo retry``: a maintainer's hand on jobs, through the coordinator.

Both ask the coordinator (it stays the only writer), in embedded mode too: a local one
is started for the request when none runs. An id that names nothing is refused in one
line, before any service starts when the database is on this host.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from collections.abc import Callable
from typing import Any

from kbo.cli.client import add_server_argument, server_of
from kbo.cli.common import add_config_argument, submitter, text
from kbo.config import Config, load_config
from kbo.errors import EXIT_OK, UserError
from kbo.text import escaped

# Run ids are UUIDs (submit and snapshot make them); job ids are numbers.
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_ID = 2**63 - 1  # SQLite's largest integer


def job_id(value: str) -> int:
    """A job id: a whole number, as `kbo submit` shows in its ID column."""
    text(value)
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= MAX_ID:
        raise argparse.ArgumentTypeError(
            f"{escaped(value)} is not a job id (a number, as `kbo submit` shows)"
        )
    return int(value)


def run_or_job(value: str) -> tuple[str, int | str]:
    """``("job", id)`` for a number, ``("run", id)`` for a run id (a UUID)."""
    text(value)
    if value.isascii() and value.isdigit():
        return "job", job_id(value)
    if RUN_ID.fullmatch(value.lower()):
        return "run", value.lower()
    raise argparse.ArgumentTypeError(
        f"{escaped(value)} is neither a job id (a number) nor a run id (a UUID, as "
        "`kbo submit` prints it)"
    )


def register(verbs: Any) -> None:
    cancel = verbs.add_parser(
        "cancel",
        help="cancel a job, or every job of a run, that is queued or running",
        description="A queued job is never built; a running one is marked cancelled at "
        "once, and its worker stops building it at its next heartbeat. Jobs that "
        "have ended are left as they are. Exit 0 when done (or already cancelled), 2 for "
        "an id that names nothing or a job that had ended, 3 when the coordinator cannot "
        "be reached.",
    )
    add_config_argument(cancel)
    cancel.add_argument("target", metavar="RUN|JOB", type=run_or_job, help="a run id or job id")
    cancel.add_argument("--json", action="store_true", help="print what was done as JSON")
    add_server_argument(cancel)
    cancel.set_defaults(run=run_cancel)
    retry = verbs.add_parser(
        "retry",
        help="give a job that ended back: a new attempt now (a manual retry)",
        description="A new attempt now for a job that ended failed, infra-error, dep-wait, "
        "lost (its leases lapsed max_attempts times) or cancelled, recorded as a manual "
        "retry with who asked; automatic retries count anew from it. Exit 0 when queued, 2 for "
        "an id that names nothing or a job queued, running or succeeded, 3 when the "
        "coordinator cannot be reached.",
    )
    add_config_argument(retry)
    retry.add_argument("job", metavar="JOB", type=job_id, help="a job id")
    retry.add_argument("--json", action="store_true", help="print the job as JSON")
    add_server_argument(retry)
    retry.set_defaults(run=run_retry)


def run_cancel(args: argparse.Namespace) -> int:
    kind, target = args.target
    path = f"/api/{kind}s/{target}/cancel"
    reply = ask(args, "kbo.cancel", {kind: target, "by": submitter()}, _check(kind, target), path)
    out = sys.stderr if args.json else sys.stdout
    for job in reply["cancelled"]:
        told = (
            ": its worker stops it at its next heartbeat (its lease is lost)"
            if job["was"] == "running"
            else ""
        )
        print(f"job {job['id']} {job['name']}: cancelled (was {job['was']}){told}", file=out)
    if args.json:
        print(json.dumps(reply, indent=2))
    if kind == "job" and not reply["cancelled"]:
        (job,) = reply["left"]
        if job["state"] != "cancelled":
            raise UserError(f"job {target} {job['state']}: nothing to cancel")
        print(f"job {target} {job['name']}: already cancelled", file=out)
    elif kind == "run":
        print(
            f"run {target}: {len(reply['cancelled'])} jobs cancelled, "
            f"{len(reply['left'])} had ended",
            file=out,
        )
    return EXIT_OK


def run_retry(args: argparse.Namespace) -> int:
    body = {"job": args.job, "by": submitter(), "id": str(uuid.uuid4())}
    reply = ask(args, "kbo.retry", body, _check("job", args.job), f"/api/jobs/{args.job}/retry")
    print(
        f"job {reply['id']} {reply['name']}: attempt {reply['attempt']} queued, a manual "
        f"retry by {reply['retried_by']}",
        file=sys.stderr if args.json else sys.stdout,
    )
    if args.json:
        print(json.dumps(reply, indent=2))
    return EXIT_OK


def _check(kind: str, target: int | str) -> Callable[[Config], None]:
    """Embedded mode: an id that names nothing is refused from the database, read-only,
    before a coordinator is started for it."""

    def check(config: Config) -> None:
        from kbo.orchestrator.state import StateReader

        state = StateReader.open(config.database)
        try:
            missing = (
                state.job(int(target)) is None
                if kind == "job"
                else state.jobs_of_run(str(target)) is None
            )
        finally:
            state.close()
        if missing:
            raise UserError(f"no {kind} {target}")

    return check


def ask(
    args: argparse.Namespace,
    task: str,
    body: dict[str, Any],
    check: Callable[[Config], None],
    path: str,
) -> dict[str, Any]:
    """Send the request to the coordinator and return its reply; its refusal is raised.
    In embedded mode, a local coordinator answers (started for it if none runs). With a
    server (``--server``), ``kbo web`` at ``path`` sends it on, as the token's name."""
    from kbo import messaging
    from kbo.cli.local import LocalServices
    from kbo.messaging.app import make_app
    from kbo.orchestrator.state import State

    config = load_config(args.config)
    server = server_of(args, config)
    if server is not None:
        reply: dict[str, Any] = server.post(path)
        return reply
    if config.embedded:
        state = State(config.database)  # the local coordinator will write here
        state.check_writable()
        state.close()
        check(config)
    app = make_app(config)
    messaging.check_broker(app)
    if not config.embedded:
        return messaging.request(app, task, body, timeout=config.reply_seconds)
    with LocalServices(config, args.config, workers=False) as services:
        return messaging.request(
            app, task, body, timeout=config.reply_seconds, alive=services.check
        )
