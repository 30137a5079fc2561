"""``kbo outbox`` lists the mails not yet sent; ``kbo digest`` mails the arches not OK."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from kbo.cli.common import add_config_argument, text
from kbo.cli.table import format_table
from kbo.config import load_config
from kbo.errors import EXIT_OK, UserError

if TYPE_CHECKING:
    from kbo.orchestrator.state import StateReader


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
    digest.add_argument(
        "--recipe", type=text, help="judge builds of this recipe (default: from config)"
    )
    digest.set_defaults(run=run_digest)


def run_outbox(args: argparse.Namespace) -> int:
    from kbo.orchestrator.state import StateReader

    config = load_config(args.config)
    state = StateReader.open(config.database)
    mails = state.outbox(include_sent=args.all)
    # Mails wait for the SMTP server's next try, not only their own.
    server_next = state.mail_server(f"{config.smtp_host}:{config.smtp_port}")[1]
    if args.json:
        print(json.dumps([m.to_json() for m in mails], indent=2))
        return EXIT_OK
    print(
        format_table(
            ["ID", "KIND", "STATE", "TRIES", "NEXT TRY", "SUBJECT", "LAST ERROR"],
            [
                [
                    str(m.id),
                    m.kind,
                    m.state,
                    str(m.attempts),
                    time.strftime("%H:%M:%S", time.localtime(max(m.next_try, server_next)))
                    if m.state == "pending"
                    else "-",
                    m.subject[:70],
                    (m.last_error or "")[:80],
                ]
                for m in mails
            ],
        )
    )
    return EXIT_OK


def run_digest(args: argparse.Namespace) -> int:
    from kbo.orchestrator.mail import digest
    from kbo.orchestrator.mail.outbox import Mailer
    from kbo.orchestrator.standings import compute
    from kbo.orchestrator.state import State

    config = load_config(args.config)
    if not config.smtp_host:
        raise UserError("no smtp_host configured: nowhere to send the digest")
    state = State(config.database)
    now = time.time()
    mail = digest.compose(config, compute(config, args.recipe or config.status_recipe, state), now)
    if mail is None:
        print("every tracked arch is OK: nothing to send")
        return EXIT_OK
    mail_id = digest.queue(config, state, *mail, now)
    Mailer(config, state).flush()
    print(f"{mail[0]}: {'sent' if _sent(state, mail_id) else 'queued (see kbo outbox)'}")
    return EXIT_OK


def _sent(state: StateReader, mail_id: int, wait: float = 60.0) -> bool:
    """Whether the mail went out, by this process or by another sender (the coordinator)
    that claimed it first: that one is waited for, up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        mail = state.mail(mail_id)
        if mail is None or mail.state != "pending":
            return mail is not None and mail.state == "sent"
        if mail.claimed_by is None or time.monotonic() > deadline:
            return False
        time.sleep(0.2)
