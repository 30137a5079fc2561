"""Options every verb that talks to kbo's services shares."""

from __future__ import annotations

import argparse


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
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
