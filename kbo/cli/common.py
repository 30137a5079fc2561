"""Options every verb that talks to kbo's services shares, and the argument types that
refuse bad input while the command line is parsed: one line, exit status 2."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from kbo.text import escaped, is_utf8


def text(value: str) -> str:
    """A non-empty UTF-8 argument. An empty one never means "the default" or "all"."""
    if not is_utf8(value):
        raise argparse.ArgumentTypeError(f"not UTF-8: {escaped(value)}")
    if not value:
        raise argparse.ArgumentTypeError("empty: give a value")
    return value


def path(value: str) -> Path:
    """A file or directory name: non-empty UTF-8 text."""
    return Path(text(value))


def name_list(value: str) -> str:
    """``a,b``: comma-separated names or globs, none of them empty (``--arch ''`` or
    ``--arch alpha,`` would otherwise select every arch)."""
    text(value)
    if not all(part.strip() for part in value.split(",")):
        raise argparse.ArgumentTypeError(f"empty name in {value!r}: give names, e.g. alpha,hppa")
    return value


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer argument within ``low`` and ``high``, refused in words otherwise."""
    accepts = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(
                f"must be a whole number {accepts}, not {escaped(value)}"
            )
        return number

    parse.__name__ = "whole number"
    return parse


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=text,
        help="config file (default: $KBO_CONFIG, ~/.config/kbo/kbo.toml, /etc/kbo/kbo.toml)",
    )


def submitter() -> str:
    """``user@host`` for the record; works in cron's bare environment too."""
    import getpass
    import os
    import socket

    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def setup_logging() -> None:
    """Service processes log to stderr, one line per event."""
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )
