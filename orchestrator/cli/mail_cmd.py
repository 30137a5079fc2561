"""``kbo outbox`` lists the mails not yet sent; ``kbo digest`` mails the arches not OK."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from orchestrator import digest
from orchestrator.cli.common import add_config_argument
from orchestrator.config import load_config
from orchestrator.errors import EXIT_OK, UserError
from orchestrator.mail import Mailer
from orchestrator.standings import compute
from orchestrator.state import State
from orchestrator.table import format_table


def register(verbs: Any) -> None:
    outbox = verbs.add_parser(
        "outbox",
        help="list the reports waiting to be mailed",
        description="Reports not sent yet, with their last error.",
    )
    add_config_argument(outbox)
    outbox.add_argument("--all", action="store_true", help="sent ones too")
    outbox.add_argument("--json", action="store_true", help="print JSON")
    outbox.set_defaults(run=run_outbox)
    digest = verbs.add_parser(
        "digest",
        help="mail the tracked arches that are not OK (cron)",
        description="Mails STALE, NEVER and FAILING arches with commits "
        "behind and age; sends nothing when all are OK.",
    )
    add_config_argument(digest)
    digest.add_argument("--recipe", help="judge builds of this recipe (default: from config)")
    digest.set_defaults(run=run_digest)


def run_outbox(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    state = State.open_readonly(config.database)
    where = "" if args.all else "WHERE state = 'pending'"
    rows = [dict(r) for r in state.db.execute(f"SELECT * FROM outbox {where} ORDER BY id")]  # noqa: S608
    for row in rows:
        row["subject"] = next(
            (
                ln[9:]
                for ln in (row.pop("message") or "").splitlines()
                if ln.startswith("Subject: ")
            ),
            f"({row['kind']}, not composed)",
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    print(
        format_table(
            ["ID", "KIND", "STATE", "TRIES", "NEXT TRY", "SUBJECT", "LAST ERROR"],
            [
                [
                    str(r["id"]),
                    r["kind"],
                    r["state"],
                    str(r["attempts"]),
                    time.strftime("%H:%M:%S", time.localtime(r["next_try"])),
                    r["subject"][:70],
                    (r["last_error"] or "")[:80],
                ]
                for r in rows
            ],
        )
    )
    return EXIT_OK


def run_digest(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if not config.smtp_host:
        raise UserError("no smtp_host configured: nowhere to send the digest")
    state = State(config.database)
    now = time.time()
    mail = digest.compose(config, compute(config, args.recipe or config.default_recipe, state), now)
    if mail is None:
        print("every tracked arch is OK: nothing to send")
        return EXIT_OK
    digest.queue(config, state, *mail, now)
    sent = Mailer(config, state).flush()
    print(f"{mail[0]}: {'sent' if sent else 'queued (see kbo outbox)'}")
    return EXIT_OK
