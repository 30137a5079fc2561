"""``kbo matrix SOURCE``: the jobs a packaging tree (or one commit of it) defines."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kbo.cli.common import add_config_argument, name_list, text
from kbo.cli.table import format_table
from kbo.config import load_config
from kbo.errors import EXIT_OK
from kbo.packaging.matrix import Selection, select, split_globs


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    for kind in ("arch", "featureset", "flavour"):
        parser.add_argument(
            f"--{kind}",
            action="append",
            type=name_list,
            metavar="GLOB",
            help=f"only these {kind}s (globs; repeat or separate with commas)",
        )


def selection_from(args: argparse.Namespace) -> Selection:
    return Selection(
        split_globs(args.arch), split_globs(args.featureset), split_globs(args.flavour)
    )


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "matrix",
        help="show the build matrix (arch x featureset x flavour) of a source",
        description="Read debian/config and debian/changelog and print the build jobs. "
        "A directory is read as it is on disk (a git checkout with its uncommitted edits); "
        "--rev reads a commit from git objects instead.",
    )
    parser.add_argument(
        "source",
        metavar="SOURCE",
        type=text,
        help="a debian/ directory or a directory holding one (a git checkout or not), or a .dsc",
    )
    parser.add_argument(
        "--rev",
        type=text,
        help="read this git revision of SOURCE's repository, not the working tree "
        "(needed for a bare repository)",
    )
    add_selection_arguments(parser)
    add_config_argument(parser)  # for a .dsc: the mirror its debian tarball comes from
    parser.add_argument("--json", action="store_true", help="print a JSON list of jobs")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo.packaging.package import read_package

    # A .dsc without its debian tarball beside it: the configured mirror has it.
    config = load_config(args.config) if args.source.endswith(".dsc") else None
    package = read_package(args.source, args.rev, config)
    jobs = select(package.matrix, selection_from(args))
    if args.json:
        print(
            json.dumps(
                [job.to_json() | {"gnu_type": package.gnu_types[job.arch]} for job in jobs],
                indent=2,
            )
        )
        return EXIT_OK
    head = package.head
    where = package.source + (f" (commit {package.commit[:12]})" if package.commit else "")
    print(f"Source:       {head.source} {head.version} ({head.distribution})")
    print(f"Uploader:     {head.uploader}, {head.date}")
    print(f"Read from:    {where}")
    print(
        f"Jobs:         {len(jobs)} of {len(package.matrix.jobs)}, "
        f"{len({j.arch for j in jobs})} arches"
    )
    print()
    rows = [
        [
            j.arch,
            j.featureset,
            j.flavour + (" *" if j.default_flavour else ""),
            j.kernel_arch or "-",
            j.target,
        ]
        for j in jobs
    ]
    print(format_table(["ARCH", "FEATURESET", "FLAVOUR", "KERNEL-ARCH", "TARGET"], rows))
    if any(j.default_flavour for j in jobs):
        print("\n* the arch's default flavour")
    return EXIT_OK
