"""``kbo bisect JOB``: find the commit that broke a failed job, with builds, through the
coordinator (it stays the only writer; in embedded mode a local one answers)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kbo.cli.common import add_config_argument, submitter
from kbo.cli.jobs_cmd import _check, ask, job_id
from kbo.config import load_config
from kbo.errors import EXIT_OK, UserError


def max_steps(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= 64:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of builds from 1 to 64")
    return int(value)


def register(verbs: Any) -> None:
    bisect = verbs.add_parser(
        "bisect",
        help="bisect a failed job: the first bad commit since its key last built",
        description="Bisect the first-parent commits between the nearest earlier success "
        "of the job's key (an ancestor of its commit) and its commit, with builds on that "
        "arch's workers like any job; results already recorded are used. A first error "
        "that differs, and endings for the hosts' sake, skip a commit (git bisect skip). "
        "A job key is bisected once from one commit: asking again shows how it stands, as "
        "`kbo status` does. The culprit is mailed when found. Exit 0 when started or "
        "known, 2 for an id that names nothing, a job that did not fail or has nothing to "
        "bisect, 3 when the coordinator cannot be reached.",
    )
    add_config_argument(bisect)
    bisect.add_argument("job", metavar="JOB", type=job_id, help="a failed job's id")
    bisect.add_argument(
        "--max-steps",
        type=max_steps,
        help="builds it may take (default: bisect_max_steps, or 8 when that is 0)",
    )
    bisect.add_argument("--json", action="store_true", help="print the bisection as JSON")
    bisect.set_defaults(run=run_bisect)


def run_bisect(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"job": args.job, "by": submitter()}
    if args.max_steps is not None:
        body["max_steps"] = args.max_steps
    if load_config(args.config).server:
        raise UserError(
            "kbo bisect asks the coordinator through the broker, and kbo web serves no "
            "bisection yet: run it where broker_url is set, without server"
        )
    reply = ask(args, "kbo.bisect", body, _check("job", args.job), "")
    print(describe(reply), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(reply, indent=2))
    return EXIT_OK


def describe(b: dict[str, Any]) -> str:
    """One line: what a bisection (its JSON) searches and how it stands."""
    what = (
        f"bisection {b['id']} of {b['name']}: {b['commits']} commits "
        f"{str(b['good'])[:12]}..{str(b['bad'])[:12]}, {b['builds']} of at most "
        f"{b['max_builds']} builds"
    )
    if b["state"] == "running":
        where = f"between {str(b['low'])[:12]} and {str(b['high'])[:12]}"
        building = f", building {str(b['building'])[:12]}" if b.get("building") else ""
        return f"{what}: running, {where}{building}"
    if b["state"] == "found":
        return f"{what}: first bad commit {b['culprit']}"
    skipped = f" ({len(b['skipped'])} skipped)" if b.get("skipped") else ""
    return (
        f"{what}: {b['state']}, first bad commit after {str(b['low'])[:12]}, at or before "
        f"{str(b['high'])[:12]}{skipped}"
    )
