"""``kbo snapshot``: queue what every tracked arch needs to be OK at HEAD (cron, timers, people)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from typing import Any

from kbo.cli.common import add_config_argument, submitter, text, whole_number
from kbo.cli.local import LocalServices, lock_holder, try_lock
from kbo.cli.table import format_age, format_table
from kbo.config import Config, load_config
from kbo.errors import EXIT_NOT_OK, EXIT_OK, UserError


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "snapshot",
        help="build every tracked arch at HEAD, stalest first (for cron)",
        description="Fetch the packaging repository and queue, at HEAD of the tracked branch, "
        "every job not already succeeded or in flight there. With --max-jobs, the arches "
        "furthest behind go first; arches over max_staleness always go. In embedded mode "
        "the command builds the jobs itself and waits for them.",
    )
    add_config_argument(parser)
    parser.add_argument("--recipe", type=text, help="how to build (default: from config)")
    parser.add_argument(
        "--max-jobs",
        type=whole_number(1),
        metavar="N",
        help="keep at most N jobs of the recipe queued or running (default: snapshot_max_jobs)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan and why; queue nothing"
    )
    parser.add_argument("--wait", action="store_true", help="follow the run until it ends")
    parser.add_argument(
        "--scheduled",
        action="store_true",
        help="started by cron or a timer: refused when the coordinator's beat owns the schedule",
    )
    parser.add_argument("--json", action="store_true", help="print the plan and run as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo import messaging
    from kbo.messaging.app import make_app
    from kbo.orchestrator.snapshot import parse_limits

    config = load_config(args.config)
    if args.scheduled and config.snapshot_schedule:
        raise UserError(
            "snapshot_schedule is set, so the coordinator's beat runs snapshots: "
            "remove this cron entry or timer, or the setting",
            config.source,
        )
    if not config.repository:
        raise UserError("no repository configured (set repository in kbo.toml or KBO_REPOSITORY)")
    parse_limits(config.max_staleness, config.source)
    if args.dry_run and config.embedded:
        return _dry_run_here(config, args)
    if config.embedded:  # the local coordinator will write here: refuse a bad one now
        from kbo.orchestrator.state import State

        State(config.database).check_writable()
    lock = _snapshot_lock(config)
    if lock is None:
        return EXIT_OK
    request = {
        "id": str(uuid.uuid4()),
        "recipe": args.recipe,
        "max_jobs": args.max_jobs,
        "dry_run": args.dry_run,
        "reason": "scheduled" if args.scheduled else "snapshot",
        "submitter": submitter(),
    }
    try:
        app = make_app(config)
        messaging.check_broker(app)
        if not config.embedded:
            return _snapshot(app, config, request, args, wait=args.wait, services=None)
        # Embedded: only this command's own worker can build what it queues.
        with LocalServices(config, args.config, workers=not args.dry_run) as services:
            return _snapshot(app, config, request, args, wait=not args.dry_run, services=services)
    finally:
        os.close(lock)


def _dry_run_here(config: Config, args: argparse.Namespace) -> int:
    """Embedded mode plans on a read-only view of the state: no services to start."""
    import time

    from kbo.orchestrator.snapshot_plan import plan_at_head
    from kbo.orchestrator.state import StateReader

    recipe = args.recipe or config.default_recipe
    state = StateReader.open(config.database)
    try:
        reply = plan_at_head(config, state, recipe, args.max_jobs, time.time())[2]
    finally:
        state.close()
    print(_plan_text(reply, {"dry_run": True}), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(reply, indent=2))
    return EXIT_OK


def _snapshot_lock(config: Config) -> int | None:
    """One snapshot at a time per state directory; None (and one line) when one runs."""
    path = config.state_path / "snapshot.lock"
    fd = try_lock(path, "snapshot")
    if fd is None:
        print(
            f"kbo: a snapshot (pid {lock_holder(path)}) is already running for "
            f"{config.state_path}: nothing to do",
            file=sys.stderr,
        )
    return fd


def _snapshot(
    app: Any,
    config: Config,
    request: dict[str, Any],
    args: Any,
    *,
    wait: bool,
    services: LocalServices | None,
) -> int:
    from kbo import messaging
    from kbo.cli.submit_cmd import follow, jobs_table

    reply = messaging.request(
        app,
        "kbo.snapshot",
        request,
        timeout=config.reply_seconds,
        alive=services.check if services else None,
    )
    out = sys.stderr if args.json else sys.stdout
    print(_plan_text(reply, request), file=out, flush=True)
    run = reply["run"]
    if run is not None and wait:
        run_id = run["id"]
        run = follow(
            lambda timeout: messaging.call(
                app,
                "kbo.run_summary",
                run_id,
                timeout=timeout,
                alive=services.check if services else None,
            ),
            run_id,
            out,
            reply_seconds=config.reply_seconds,
            services=services,
        )
        print(jobs_table(run["jobs"]), file=out)
    if args.json:
        print(json.dumps(reply | {"run": run}, indent=2))
    if run is None or not wait:
        return EXIT_OK
    return EXIT_OK if all(j["state"] == "succeeded" for j in run["jobs"]) else EXIT_NOT_OK


def _plan_text(reply: dict[str, Any], request: dict[str, Any]) -> str:
    budget = reply["budget"]
    capacity = "no job limit" if budget is None else f"room for {budget} more jobs"
    lines = [
        f"snapshot of {reply['branch']} at {reply['head'][:12]} ({reply['version']}), "
        f"recipe {reply['recipe']}, {capacity}",
        format_table(
            ["ARCH", "STATE", "BEHIND", "STALE FOR", "QUEUE", "WHY"],
            [
                [
                    d["arch"],
                    d["state"],
                    str(d["behind"]),
                    format_age(d["age_seconds"]) if d["age_seconds"] else "-",
                    str(len(d["jobs"])) if d["jobs"] else "-",
                    d["why"],
                ]
                for d in reply["decisions"]
            ],
        ),
    ]
    run = reply["run"]
    if request["dry_run"]:
        total = sum(len(d["jobs"]) for d in reply["decisions"])
        lines.append(f"dry run: {total} jobs would be queued; nothing was")
    elif run is None:
        lines.append("nothing to queue: every tracked arch is OK or in flight at HEAD")
    else:
        new = sum(1 for job in run["jobs"] if job["enqueued"])
        lines.append(f"run {run['id']}: {len(run['jobs'])} jobs, {new} queued now")
    return "\n".join(lines)
