"""``kbo config``: check a configuration, show the values in force and where each came from."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kbo.cli.common import add_config_argument
from kbo.cli.table import format_table
from kbo.config import load_config, reference, settings, shown
from kbo.errors import EXIT_OK, UserError


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "config",
        help="check the configuration, or show the values in force",
        description="--check validates the config file in force (or --config FILE) and the "
        "KBO_* environment against kbo's schema: one line, exit 0 or 2. --show prints every "
        "setting, its value and where it came from (file, environment or default), with "
        "secrets masked. --reference prints the table of settings the README holds.",
    )
    add_config_argument(parser)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--check", action="store_true", help="validate, print one line")
    what.add_argument("--show", action="store_true", help="print the effective values")
    what.add_argument("--reference", action="store_true", help="print every setting (Markdown)")
    parser.add_argument("--json", action="store_true", help="--show as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.reference:
        print(reference(), end="")
        return EXIT_OK
    if args.json and not args.show:
        raise UserError("--json goes with --show")
    config = load_config(args.config)
    if args.check:
        print(f"{config.source}: OK" + (" (no file: defaults)" if not config.origins else ""))
        return EXIT_OK
    rows = [
        (s.name, shown(s.name, getattr(config, s.name)), config.origins.get(s.name, "default"))
        for s in settings()
    ]
    if args.json:
        print(
            json.dumps({name: {"value": v, "from": origin} for name, v, origin in rows}, indent=2)
        )
        return EXIT_OK
    print(
        format_table(
            ["SETTING", "VALUE", "FROM"],
            [[name, _text(value), origin] for name, value, origin in rows],
        )
    )
    return EXIT_OK


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(value) or "-"
    return str(value) if value != "" else '""'
