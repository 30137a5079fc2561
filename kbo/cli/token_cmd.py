"""``kbo token``: who may use ``kbo web``. Run on the coordinator's host, by its admin."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from kbo.cli.common import add_config_argument, text
from kbo.cli.table import format_table
from kbo.config import load_config
from kbo.errors import EXIT_OK, UserError

# `kbo token add` makes people's tokens; a worker's (issue 15) will take --arches too.
CLI_ROLES = ("maintainer", "admin")


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "token",
        help="add, list or revoke the tokens `kbo web` knows maintainers by",
        description="Tokens for kbo web, one per name: the name is what runs record as "
        "their submitter. Only a hash of each token is kept; `add` prints the token once. "
        "Writes the state database: run on the coordinator's host.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="a new token for NAME, printed once")
    add.add_argument("name", metavar="NAME", type=text, help="who it is for (a login, a host)")
    add.add_argument("--role", choices=CLI_ROLES, required=True, help="what it may do")
    listing = actions.add_parser("list", help="every token: name, role, created, revoked")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = actions.add_parser("revoke", help="revoke NAME's token at once")
    revoke.add_argument("name", metavar="NAME", type=text)
    for action in (add, listing, revoke):
        add_config_argument(action)
        action.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo.orchestrator.state import State, StateReader, tokens

    config = load_config(args.config)
    if args.action == "list":
        reader = StateReader.open(config.database)
        try:
            found = tokens.listed(reader)
        finally:
            reader.close()
        if args.json:
            print(json.dumps([t.to_json() for t in found], indent=2))
        else:
            rows = [
                [t.name, t.role, _when(t.created_at), _when(t.revoked_at) if t.revoked_at else "-"]
                for t in found
            ]
            print(format_table(["NAME", "ROLE", "CREATED", "REVOKED"], rows))
        return EXIT_OK
    tokens.check_name(args.name)
    state = State(config.database)
    try:
        if args.action == "add":
            secret = tokens.add(state, args.name, args.role)
            print(f"the token of {args.name} ({args.role}), shown this once:", file=sys.stderr)
            print(secret)
            return EXIT_OK
        if not tokens.revoke(state, args.name):
            raise UserError(f"{args.name} has no live token")
    finally:
        state.close()
    print(f"{args.name}: token revoked")
    return EXIT_OK


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(timestamp))
