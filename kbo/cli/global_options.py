"""Options accepted before the verb as well as after it: ``kbo --config F status``.

The top-level parser keeps them under their own names, so that a verb's own default
cannot overwrite them, and ``apply`` hands them to the verb once parsing is done.
"""

from __future__ import annotations

import argparse

from kbo.cli.common import text
from kbo.errors import UserError

HELP_TITLE = "options for every verb (also accepted after the verb)"


def add_global_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(HELP_TITLE)
    group.add_argument(
        "--config",
        dest="global_config",
        type=text,
        metavar="FILE",
        help="config file (default: $KBO_CONFIG, ~/.config/kbo/kbo.toml, /etc/kbo/kbo.toml); "
        "verbs that read no config ignore it",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest="global_verbose",
        action="store_true",
        help="on an internal error, print its traceback (as KBO_DEBUG=1 does)",
    )
    group.add_argument(
        "--json",
        dest="global_json",
        action="store_true",
        help="print JSON, for the verbs that can: matrix, arches, recipes, submit, snapshot, "
        "status, outbox",
    )


def add_verbose(verb: argparse.ArgumentParser) -> None:
    """``-v`` after a verb too: every verb takes it, under its own name."""
    verb.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)


def verbose(args: argparse.Namespace) -> bool:
    return bool(args.global_verbose or getattr(args, "verbose", False))


def apply(args: argparse.Namespace) -> None:
    """Give the verb the global options; an option given after the verb wins.

    ``--config`` is ignored by a verb that reads no config (so an alias can always pass
    it); ``--json`` for a verb that cannot print JSON is bad input.
    """
    if args.global_config is not None and hasattr(args, "config") and args.config is None:
        args.config = args.global_config
    if args.global_json:
        if not hasattr(args, "json"):
            raise UserError(f"--json: `kbo {args.verb}` has no JSON output")
        args.json = True
