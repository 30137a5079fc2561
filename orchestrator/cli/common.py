"""Options every verb that talks to kbo's services shares."""

from __future__ import annotations

import argparse


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: $KBO_CONFIG, ~/.config/kbo/kbo.toml, /etc/kbo/kbo.toml)",
    )


def setup_logging() -> None:
    """Service processes log to stderr, one line per event."""
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )
