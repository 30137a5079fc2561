"""``kbo outbox`` lists the mails not yet sent; ``kbo digest`` mails the arches not OK."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from orchestrator.cli.common import add_config_argument
from orchestrator.cli.status_cmd import standings
from orchestrator.config import load_config
from orchestrator.errors import EXIT_OK, UserError
from orchestrator.mail import Mailer
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
    recipe = args.recipe or config.default_recipe
    head, arches = standings(config, recipe)
    behind = [a for a in arches if a.state != "OK"]
    if not behind:
        print("every tracked arch is OK: nothing to send")
        return EXIT_OK
    now = time.time()
    lines = [
        f"{len(behind)} of {len(arches)} tracked arches are not built at HEAD "
        f"({config.branch} at {head[:12]}, recipe {recipe}):",
        "",
    ]
    for a in behind:
        good = f"last good {a.last_good.sha[:7]}" if a.last_good else "never built"
        age = f", for {int((now - a.stale_since) // 86400)} days" if a.stale_since else ""
        extra = f", failing at {a.failing_commit[:7]}" if a.failing_commit else ""
        lines.append(
            f"  {a.name:10} {a.state:8} {good}, "
            f"{a.commits_behind if a.commits_behind is not None else '?'} commits behind"
            f"{age}{extra}"
        )
    subject = f"[kbo] digest: {len(behind)} arches not built at {head[:7]}"
    state = State(config.database)
    with state.transaction() as db:
        db.execute(
            "INSERT INTO outbox (kind, data, created_at, due_at, next_try) VALUES"
            " ('digest', ?, ?, ?, ?)",
            (
                json.dumps(
                    {
                        "subject": subject,
                        "body": "\n".join(lines) + "\n",
                        "recipients": list(config.mail_to),
                    }
                ),
                now,
                now,
                now,
            ),
        )
    sent = Mailer(config, state).flush()
    print(f"{subject}: {'sent' if sent else 'queued (see kbo outbox)'}")
    return EXIT_OK
