"""``kbo workers``: the build workers the coordinator knows, read from its database."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from kbo.cli.common import add_config_argument
from kbo.cli.table import format_age, format_table
from kbo.config import load_config
from kbo.errors import EXIT_OK


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "workers",
        help="list the build workers: arches, executors, slots, last seen, jobs, infra-errors",
        description="Every worker that announced itself to the coordinator: its host, "
        "arches, executors, slots and kbo version, when it was last seen (it announces "
        "itself every lease_seconds / 3, and each build's heartbeat counts), the jobs it "
        "builds now and its attempts that ended infra-error in the last day. Reads the "
        "state database read-only, so it runs on the coordinator's host. Exit 0.",
    )
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo.orchestrator import documents
    from kbo.orchestrator.state import StateReader

    config = load_config(args.config)
    now = time.time()
    state = StateReader.open(config.database)
    try:
        found = documents.workers(config, state, now)
    finally:
        state.close()
    if args.json:
        print(json.dumps(found, indent=2))
        return EXIT_OK
    if not found:
        print("no worker has announced itself to the coordinator")
        return EXIT_OK
    rows = [
        [
            w["name"],
            w["host"],
            ",".join(w["arches"]),
            ",".join(sorted({e for es in w["executors"].values() for e in es})) or "-",
            str(w["slots"]),
            w["version"],
            format_age(max(0.0, now - w["last_seen"]))
            + " ago"
            + ("" if w["live"] else " (not live)"),
            ", ".join(w["jobs"]) or "-",
            str(w["infra_errors"]),
        ]
        for w in found
    ]
    header = ["NAME", "HOST", "ARCHES", "EXECUTORS", "SLOTS", "VERSION", "LAST SEEN", "JOBS"]
    print(format_table([*header, "INFRA-ERRORS 24H"], rows))
    return EXIT_OK
