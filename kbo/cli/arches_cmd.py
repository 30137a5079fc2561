"""``kbo arches``: which Debian arches this host can build, and how."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kbo.cli.table import format_table
from kbo.errors import EXIT_OK


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "arches",
        help="show which arches this host can build: native, cross or qemu",
        description="Probe this host for cross compilers, qemu-user and binfmt_misc handlers.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo import arches
    from kbo.packaging import dpkg_arch
    from kbo.workers.capabilities import probe_arch

    infos = arches.load_all()
    host = dpkg_arch.host_arch()
    gnu = dpkg_arch.gnu_types(info.name for info in infos)
    capabilities = [probe_arch(info, host, gnu.get(info.name)) for info in infos]
    if args.json:
        print(json.dumps([c.to_json() for c in capabilities], indent=2))
        return EXIT_OK
    print(f"Host architecture: {host}\n")
    rows = [
        [c.arch, c.gnu_type or "-", ",".join(c.executors) or "NO", "; ".join(c.missing)]
        for c in capabilities
    ]
    print(format_table(["ARCH", "GNU TYPE", "BUILDS WITH", "MISSING"], rows))
    buildable = sum(1 for c in capabilities if c.executors)
    print(f"\n{buildable} of {len(capabilities)} arches can be built on this host.")
    return EXIT_OK
