"""``kbo status``: every tracked arch, and whether it is built since the last commit."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from kbo.cli.bisect_cmd import describe
from kbo.cli.client import Server, add_server_argument, server_of
from kbo.cli.common import add_config_argument, path, text
from kbo.cli.table import format_age, format_table
from kbo.config import Config, load_config
from kbo.errors import EXIT_NOT_OK, EXIT_OK, InfraError, UserError
from kbo.orchestrator.documents import StatusReport
from kbo.orchestrator.live_workers import LIVE_LEASES
from kbo.orchestrator.staleness import Standing


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "status",
        help="show which tracked arches are built at the last commit (exit 1 if any is not)",
        description="For each tracked arch: OK, STALE, NEVER, FAILING or BUILDING, the last "
        "commit with a complete successful build, and how far HEAD is ahead of it; and what "
        "the hosts are to blame for (HOST PROBLEM): infra-error (a host or service failed the "
        "build; retried), dep-wait (no host had its Build-Depends yet) or lost (its workers "
        "stopped renewing the lease max_attempts times).",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--recipe", type=text, help="judge builds of this recipe (default: from config)"
    )
    parser.add_argument("--flavours", action="store_true", help="one row per flavour")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--html", type=path, metavar="FILE", help="also write a static status page")
    add_server_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo.orchestrator.status_page import check_target, write_page

    config = load_config(args.config)
    if args.html:
        check_target(args.html)  # before any work
    server = server_of(args, config)
    if server is None:
        recipe = args.recipe or config.status_recipe
        report, where = _read(config, recipe), config.repository
    else:
        report, where = _ask(server, args.recipe), server.url
        recipe = report.recipe
    head, arches, unserved = report.head, report.arches, report.unserved
    now = time.time()
    if args.html:
        try:
            write_page(args.html, config, recipe, head, arches, now, unserved)
        except OSError as e:
            raise UserError(f"cannot write the page: {e.strerror}", str(args.html)) from None
    if args.json:
        print(json.dumps(report.to_json(now), indent=2))
    else:
        print(f"{where} {report.branch} at {head[:12]}, recipe {recipe}\n")
        rows = [
            _row(s, now, no_worker=s is a and a.name in unserved)
            for a in arches
            for s in ([a, *a.flavours] if args.flavours else [a])
        ]
        for row in rows:  # an arch's state says where it stands on the ladder
            if climbed := report.ladder_text(row[0]):
                row[1] = f"{row[1]} ({climbed})"
        header = ["ARCH", "STATE", "LAST GOOD", "BEHIND", "STALE FOR", "FAILING AT"]
        print(format_table([*header, "HOST PROBLEM"], rows))
        failing = [a for a in arches if a.state == "FAILING"]
        for arch in failing:
            print(f"\n{arch.name} failing since {(arch.failing_commit or '?')[:12]}:")
            print(f"  first error: {arch.first_error or '(none found)'}")
            print(f"  log: {arch.log or '(not kept)'}")
        for arch in arches:
            print_host_problems(arch, now)
        if cancelled := [f for a in arches for f in a.flavours if f.cancelled]:
            print("\nnot built at HEAD, cancelled (`kbo retry JOB` or a new submit builds it):")
            for flavour in cancelled:
                print(f"  {flavour.name}: {flavour.cancelled}")
        if report.bisections:
            print("\nbisecting (`kbo bisect JOB` shows one):")
            for b in report.bisections:
                print(f"  {describe(b)}")
        if unserved:
            seen = "lately" if server else f"in {LIVE_LEASES * config.lease_seconds} s"
            print(
                f"\nno worker: no live worker serves {', '.join(sorted(unserved))} (none seen "
                f"{seen}; see `kbo workers`)"
            )
    return EXIT_OK if all(a.state == "OK" for a in arches) else EXIT_NOT_OK


def _read(config: Config, recipe: str) -> StatusReport:
    from kbo.orchestrator import documents
    from kbo.orchestrator.state import StateReader

    state = StateReader.open(config.database)
    try:
        return documents.status(config, recipe, state)
    finally:
        state.close()


def _ask(server: Server, recipe: str | None) -> StatusReport:
    """The same report, from ``kbo web``."""
    from urllib.parse import quote

    doc = server.get("/api/status" + (f"?recipe={quote(recipe)}" if recipe else ""))
    try:
        return StatusReport.from_json(doc)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InfraError(f"{server.url} answered with no status document: is it kbo web?") from None


def print_host_problems(arch: Standing, now: float) -> None:
    """The flavours of ``arch`` not built at HEAD through no fault of the commit."""
    held = [f for f in arch.flavours if f.host_problem is not None]
    if not held:
        return
    print(f"\n{arch.name} not built at HEAD, the hosts' doing (never mailed to authors):")
    for flavour in held:
        problem = flavour.host_problem
        assert problem is not None
        if problem.retry_at is None:
            retry = "no retry left" if problem.state == "infra-error" else "not retried"
        else:
            retry = f"retried in {format_age(max(0.0, problem.retry_at - now))}"
        tries = f", {problem.infra_errors} so far" if problem.state == "infra-error" else ""
        worker = f" on {problem.worker}" if problem.worker else ""
        print(f"  {flavour.name}: {problem.state}{worker} ({retry}{tries})")
        print(f"    {problem.error or '(no error given)'}")


def _row(s: Standing, now: float, *, no_worker: bool = False) -> list[str]:
    good = (
        "-"
        if s.last_good is None
        else (
            f"{s.last_good.sha[:7]} {time.strftime('%Y-%m-%d', time.gmtime(s.last_good.timestamp))}"
        )
    )
    return [
        s.name,
        s.state,
        good,
        "-" if s.commits_behind is None else str(s.commits_behind),
        "-" if s.stale_since is None else format_age(now - s.stale_since),
        (s.failing_commit or "-")[:7],
        "; ".join(
            [
                *([s.host_problem.state] if s.host_problem else []),
                *(["cancelled"] if s.cancelled else []),
                *(["no worker"] if no_worker else []),
            ]
        )
        or "-",
    ]
