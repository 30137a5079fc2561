"""``kbo import-dsc``: start a packaging repository from a Debian source package."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
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
        "changelog's newest entry. DSC is a .dsc file, or PACKAGE/SUITE (say linux/bookworm) "
        "for the newest such source package in the mirror, checked against the suite's "
        "signed Release with Debian's archive keyring.",
    )
    add_config_argument(parser)
    parser.add_argument("dsc", metavar="DSC", type=path)
    parser.add_argument("dest", metavar="DEST", type=path)
    parser.add_argument(
        "--branch", type=text, default="main", help="branch to create (default: main)"
    )
    parser.add_argument(
        "--keep-dsc",
        metavar="DIR",
        type=path,
        help="also copy the checked .dsc into DIR (name DIR in dsc_dirs, and workers check "
        "the orig tarball against it)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo.packaging.archive import ArchiveSource, fetch_dsc
    from kbo.packaging.dsc import read_dsc
    from kbo.packaging.import_dsc import check_branch_name, import_dsc

    config = load_config(args.config)
    check_branch_name(args.branch)
    dsc = args.dsc
    wanted = None if dsc.exists() else ArchiveSource.parse(str(dsc))
    if wanted is not None:
        dsc = fetch_dsc(
            wanted, config.mirror, config.cache_path / "downloads", Path(config.archive_keyring)
        )
        print(f"{wanted}: {dsc.name} from {config.mirror}, checked against its signed Release")
    commit = import_dsc(dsc, args.dest, args.branch, config)
    info = read_dsc(dsc)
    if args.keep_dsc is not None:
        args.keep_dsc.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dsc, args.keep_dsc / dsc.name)
    print(f"{args.dest}: {args.branch} at {commit} ({info.source} {info.version})")
    return EXIT_OK
