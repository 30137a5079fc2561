"""Options every verb that talks to kbo's services shares."""

from __future__ import annotations

import argparse


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: $KBO_CONFIG, ~/.config/kbo/kbo.toml, /etc/kbo/kbo.toml)",
    )
