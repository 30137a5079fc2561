"""``kbo chroot ARCH``: make (or with --rebuild, make anew) the cached emulation chroot."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kbo.cli.common import add_config_argument, text
from kbo.config import load_config
from kbo.errors import EXIT_OK


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "chroot",
        help="make the cached foreign-arch chroot the qemu executor builds in",
        description="Run mmdebstrap for ARCH with the mirror, suite and keyring from arches/.",
    )
    add_config_argument(parser)
    parser.add_argument("arch", metavar="ARCH", type=text)
    parser.add_argument("--rebuild", action="store_true", help="make it anew")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo import arches
    from kbo.workers import privileges
    from kbo.workers.executors.qemu import chroot_path, ensure_chroot

    config = load_config(args.config)
    info = arches.load(args.arch)
    privileges.become_worker_user(config)  # the chroot is the worker's, made without root
    print(f"chroot for {info.name}: {chroot_path(info, config)}", flush=True)
    root = ensure_chroot(info, config, sys.stdout.buffer, rebuild=args.rebuild)
    print(f"ready: {root}")
    return EXIT_OK
