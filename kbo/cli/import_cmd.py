"""``kbo import-dsc``: start a packaging repository from a Debian source package."""

from __future__ import annotations

import argparse
from typing import Any

from kbo.cli.common import add_config_argument, path, text
from kbo.config import load_config
from kbo.errors import EXIT_OK


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "import-dsc",
        help="make a packaging git repository from a .dsc's debian/",
        description="Unpack the debian tarball of DSC (beside it, or from the mirror's pool, "
        "checked against the .dsc) into a new git repository DEST, committed as the "
        "changelog's newest entry.",
    )
    add_config_argument(parser)
    parser.add_argument("dsc", metavar="DSC", type=path)
    parser.add_argument("dest", metavar="DEST", type=path)
    parser.add_argument(
        "--branch", type=text, default="main", help="branch to create (default: main)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo.packaging.import_dsc import import_dsc

    commit = import_dsc(args.dsc, args.dest, args.branch, load_config(args.config))
    print(f"{args.dest}: {args.branch} at {commit}")
    return EXIT_OK
