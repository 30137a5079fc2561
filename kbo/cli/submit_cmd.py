"""``kbo submit``: ask the coordinator to plan and queue a run, and follow it with --wait."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kbo import arches
from kbo.cli.client import Server, add_server_argument, server_of
from kbo.cli.common import add_config_argument, submitter, text, whole_number
from kbo.cli.local import LocalServices
from kbo.cli.matrix_cmd import add_selection_arguments, selection_from
from kbo.cli.table import format_table
from kbo.config import Config, load_config
from kbo.errors import EXIT_NOT_OK, EXIT_OK, InfraError, StoppedWaiting, UserError
from kbo.orchestrator.state import State
from kbo.packaging import dpkg_arch

if TYPE_CHECKING:  # Celery is imported by the verbs that talk to a broker, not at start-up
    from celery import Celery

GLOB_CHARACTERS = set("*?[")


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "submit",
        help="queue the build jobs of a commit (exit 1 with --wait if any failed)",
        description="The coordinator plans the jobs from the matrix at REV, records the run "
        "and queues every job that is not already queued, running or done.",
    )
    add_config_argument(parser)
    parser.add_argument(
        "source",
        metavar="SOURCE",
        nargs="?",
        type=text,
        help="packaging git repository, as a path or URL the coordinator can reach "
        "(default: the configured repository)",
    )
    parser.add_argument(
        "--rev", type=text, help="branch or commit (default: the configured branch)"
    )
    parser.add_argument("--recipe", type=text, help="how to build (default: from config)")
    add_selection_arguments(parser)
    parser.add_argument("--reason", type=text, default="manual", help="why (cron runs say so)")
    parser.add_argument("--wait", action="store_true", help="follow the run until it ends")
    parser.add_argument(
        "--timeout",
        type=whole_number(1),
        metavar="SECONDS",
        help="with --wait: stop waiting after this long, exit 124 (the jobs stay queued)",
    )
    parser.add_argument("--json", action="store_true", help="print the run as JSON")
    add_server_argument(parser)
    parser.set_defaults(run=run)


def check_arch_names(patterns: tuple[str, ...]) -> None:
    """Catch a misspelt arch before anything is sent: plain names must be Debian arches."""
    names = [p for p in patterns if not GLOB_CHARACTERS & set(p)]
    known = dpkg_arch.gnu_types(names)
    for name in names:
        if known.get(name) is None or name not in arches.supported():
            raise UserError(f"--arch {name}: unknown architecture")


def run(args: argparse.Namespace) -> int:
    from kbo import messaging
    from kbo.messaging.app import make_app

    if args.timeout is not None and not args.wait:
        raise UserError("--timeout goes with --wait")
    # The wait ends this long after the command starts, whatever it spent before following.
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    config = load_config(args.config)
    selection = selection_from(args)
    server = server_of(args, config)
    if server is not None:
        return _submit_to(server, selection, args, deadline)
    check_arch_names(selection.arches)
    request = {
        "id": str(uuid.uuid4()),
        "source": _source(args.source),
        "rev": args.rev,
        "recipe": args.recipe,
        "arches": selection.arches,
        "featuresets": selection.featuresets,
        "flavours": selection.flavours,
        "reason": args.reason,
        "submitter": submitter(),
    }
    if config.embedded:
        _check_local_source(request["source"] or config.repository, config)
        state = State(config.database)  # the local coordinator will write here
        state.check_writable()
        state.close()
    app = make_app(config)
    messaging.check_broker(app)
    if config.embedded:
        with LocalServices(config, args.config, workers=args.wait) as services:
            return _submit(app, config, request, args, services, deadline)
    return _submit(app, config, request, args, None, deadline)


def _source(source: str | None) -> str | None:
    """A local path goes to the coordinator as an absolute path; a URL as it is."""
    from kbo.packaging.repository import is_url, source_id

    if source is None or is_url(source):
        return source
    return source_id(source)


def _check_local_source(source: str, config: Config) -> None:
    """Embedded mode: a path the local coordinator cannot read is refused before it starts."""
    from kbo.packaging.repository import is_url, local_repository

    if source and not is_url(source):
        local_repository(source, config)


def _submit(
    app: Celery,
    config: Config,
    request: dict[str, Any],
    args: argparse.Namespace,
    services: LocalServices | None,
    deadline: float | None = None,
) -> int:
    from kbo import messaging

    reply = messaging.request(
        app,
        "kbo.submit",
        request,
        timeout=config.reply_seconds,
        alive=services.check if services else None,
    )
    return _show(
        reply,
        args,
        lambda timeout: messaging.call(
            app,
            "kbo.run_summary",
            reply["id"],
            timeout=timeout,
            alive=services.check if services else None,
        ),
        reply_seconds=config.reply_seconds,
        services=services,
        deadline=deadline,
    )


def _submit_to(
    server: Server, selection: Any, args: argparse.Namespace, deadline: float | None
) -> int:
    """``--server``: the same request through ``kbo web``, which records the token's name
    as who asked; ``--wait`` polls the run there."""
    body = {
        "source": args.source,
        "rev": args.rev,
        "recipe": args.recipe,
        "arches": list(selection.arches),
        "featuresets": list(selection.featuresets),
        "flavours": list(selection.flavours),
        "reason": args.reason,
    }
    reply = server.post("/api/runs", body)
    return _show(
        reply,
        args,
        lambda timeout: server.get(f"/api/runs/{reply['id']}", timeout=max(timeout, 5.0)),
        reply_seconds=60,
        deadline=deadline,
    )


def _show(
    reply: dict[str, Any],
    args: argparse.Namespace,
    ask: Callable[[float], dict[str, Any]],
    *,
    reply_seconds: float,
    services: LocalServices | None = None,
    deadline: float | None = None,
) -> int:
    """Print the recorded run; with ``--wait``, follow it (``ask(timeout)`` reads it anew)
    until every job has ended or the deadline; the exit status."""
    out = sys.stderr if args.json else sys.stdout
    new = sum(1 for job in reply["jobs"] if job["enqueued"])
    print(
        f"run {reply['id']}: {reply['version']} at {reply['commit_sha'][:12]}, recipe "
        f"{reply['recipe']}, by {reply['submitter']} ({reply['reason']})",
        file=out,
    )
    print(
        f"{len(reply['jobs'])} jobs, {new} queued now, "
        f"{len(reply['jobs']) - new} already queued, running or done",
        file=out,
    )
    if not args.wait:
        print(jobs_table(reply["jobs"]), file=out)
        if args.json:
            print(json.dumps(_summary(reply), indent=2))
        return EXIT_OK
    final = follow(
        ask, reply["id"], out, reply_seconds=reply_seconds, services=services, deadline=deadline
    )
    print(jobs_table(final["jobs"]), file=out)
    if args.json:
        print(json.dumps(_summary(final), indent=2))
    if not all_ended(final["jobs"]):
        waiting = sum(1 for job in final["jobs"] if not _ended(job))
        raise StoppedWaiting(
            f"stopped waiting after {args.timeout} s (--timeout): {waiting} of "
            f"{len(final['jobs'])} jobs of run {reply['id']} not ended stay queued or running"
        )
    return EXIT_OK if all(j["state"] == "succeeded" for j in final["jobs"]) else EXIT_NOT_OK


def follow(
    ask: Callable[[float], dict[str, Any]],
    run_id: str,
    out: Any,
    *,
    reply_seconds: float,
    services: LocalServices | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Poll the run (``ask(timeout)``) until every job has ended, showing its progress
    (kbo.cli.progress).
    A local coordinator or worker that dies ends the wait with an error; a remote
    coordinator that stops answering (a restart) is waited for. At ``deadline`` (a
    ``time.monotonic()``), the last summary seen is returned, ended or not."""
    from kbo.cli.progress import Progress

    progress = Progress(out)
    summary: dict[str, Any] | None = None
    while True:
        if services is not None:
            services.check()
        left = reply_seconds if deadline is None else deadline - time.monotonic()
        if left <= 0 and summary is not None:
            return summary
        try:
            summary = ask(max(0.1, min(reply_seconds, left)))
        except InfraError as e:
            if services is not None:
                services.check()
            if deadline is not None and time.monotonic() >= deadline:
                raise StoppedWaiting(f"stopped waiting (--timeout) for run {run_id}: {e}") from None
            progress.note(f"{e}; still waiting")
            continue
        assert summary is not None
        progress.update(summary["jobs"])
        if all_ended(summary["jobs"]):
            return summary
        pause = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
        time.sleep(max(0.0, pause))


def _ended(job: dict[str, Any]) -> bool:
    """A job has ended when it succeeded, failed or was cancelled, is out of infra-error
    retries, or waits for a host with its Build-Depends (dep-wait), which may take days."""
    return bool(job.get("ended", job["state"] in ("succeeded", "failed", "cancelled")))


def all_ended(jobs: list[dict[str, Any]]) -> bool:
    return all(_ended(job) for job in jobs)


def brief(error: str, width: int = 100) -> str:
    """A first error fit for a table: the sandbox's /build/src/ prefix dropped, so the
    message after the file name shows, then cut at ``width``."""
    text = re.sub(r"^/build/(src/)?", "", error.strip())
    return text if len(text) <= width else text[: width - 1] + "…"


def jobs_table(jobs: list[dict[str, Any]]) -> str:
    rows = [
        [
            str(j["id"]),
            j["arch"],
            j["featureset"],
            j["flavour"],
            j["state"],
            str(j["attempts"]),
            j.get("executor") or "-",
            j.get("worker") or "-",
            brief(j.get("first_error") or ""),
        ]
        for j in jobs
    ]
    return format_table(
        [
            "ID",
            "ARCH",
            "FEATURESET",
            "FLAVOUR",
            "STATE",
            "ATTEMPTS",
            "EXECUTOR",
            "WORKER",
            "FIRST ERROR",
        ],
        rows,
    )


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "arch",
        "featureset",
        "flavour",
        "state",
        "attempts",
        "executor",
        "worker",
        "worker_host",
        "first_error",
        "log_path",
        "artifacts",
        "retry_at",
    )
    return {
        k: run[k]
        for k in ("id", "source", "rev", "commit_sha", "recipe", "version", "submitter", "reason")
    } | {
        "succeeded": all(j["state"] == "succeeded" for j in run["jobs"]),
        "jobs": [
            {k: j.get(k) for k in keys} | {"target": f"binary-arch_{j['name']}"}
            for j in run["jobs"]
        ],
    }
