"""``kbo worker``: a Celery worker on the build queues of the arches this host can build."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from dataclasses import replace
from typing import Any

from kbo import arches
from kbo.cli.common import add_config_argument, name_list, setup_logging, text, whole_number
from kbo.config import load_config
from kbo.errors import EXIT_OK, UserError
from kbo.packaging import dpkg_arch
from kbo.packaging.matrix import split_globs
from kbo.recipes import EXECUTORS
from kbo.workers.capabilities import ArchCapability, probe_arch


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "worker",
        help="serve the build queues of some arches (build.<arch>)",
        description="Run a build worker. It refuses an arch this host cannot build.",
    )
    add_config_argument(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--arch", action="append", type=name_list, metavar="A,B", help="arches to serve"
    )
    which.add_argument("--auto", action="store_true", help="every arch this host can build")
    parser.add_argument("--name", type=text, help="worker name (default kbo-<arches>@<host>)")
    parser.add_argument(
        "--slots", type=whole_number(1, 64), help="concurrent builds (default: build_slots)"
    )
    parser.add_argument(
        "--executor",
        action="append",
        choices=("native", "cross", "qemu"),
        metavar="NAME",
        help="build only this way (native, cross or qemu; repeatable): e.g. a host kept for "
        "emulated builds",
    )
    parser.add_argument(
        "--unchecked",
        action="store_true",
        help="serve the named arches without probing this host: each job then finds out "
        "for itself (and records) what is missing. For recipes that build nothing (noop), and "
        "for checking how kbo reports a broken host",
    )
    parser.set_defaults(run=run)


def capabilities(names: list[str] | None, unchecked: bool = False) -> list[ArchCapability]:
    """The probe for the named arches (or all); a named arch this host cannot build is an
    error, unless ``unchecked``, which offers every executor and leaves the checks to each
    job. Every served arch can also run executor-less recipes."""
    infos = [arches.load(n) for n in names] if names else arches.load_all()
    host = dpkg_arch.host_arch()
    gnu = dpkg_arch.gnu_types(i.name for i in infos)
    found = [probe_arch(info, host, gnu.get(info.name)) for info in infos]
    for capability in found:
        if names and not capability.executors and not unchecked:
            raise UserError(
                f"this host cannot build {capability.arch}: {'; '.join(capability.missing)}"
            )
    if names and unchecked:
        return [replace(c, executors=EXECUTORS) for c in found]
    return [replace(c, executors=(*c.executors, "none")) for c in found if c.executors]


SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def system_path(path: str) -> str:
    """PATH with the system directories added: a worker started from cron (PATH=/usr/bin:/bin)
    still finds what it runs from /usr/sbin."""
    parts = [p for p in path.split(":") if p]
    return ":".join(parts + [d for d in SYSTEM_PATH if d not in parts])


def run(args: argparse.Namespace) -> int:
    from kbo import messaging
    from kbo.messaging.app import build_queue, make_app
    from kbo.workers import announce, build, privileges, worker_paths

    config = load_config(args.config)
    setup_logging()
    os.environ["PATH"] = system_path(os.environ.get("PATH", ""))
    served = capabilities(None if args.auto else list(split_globs(args.arch)), args.unchecked)
    if not served:
        raise UserError("this host can build no arch (see `kbo arches`)")
    app = make_app(config)  # first: as root, it shares embedded mode's message folders
    privileges.become_worker_user(config)
    privileges.check_sandbox(config)
    if removed := worker_paths.remove_orphans(config):
        logging.getLogger("kbo.worker").info(
            "removed %d build directories left by a dead worker", len(removed)
        )
    messaging.check_broker(app)
    if args.executor:
        served = [
            replace(c, executors=tuple(e for e in c.executors if e in args.executor or e == "none"))
            for c in served
        ]
        if unusable := [c.arch for c in served if c.executors == ("none",) and not args.unchecked]:
            raise UserError(
                f"this host cannot build {', '.join(unusable)} with {' or '.join(args.executor)}"
            )
    build.EXECUTORS_BY_ARCH.update({c.arch: c.executors for c in served})
    build.register(app, config)
    names = [c.arch for c in served]
    # A name that says what the worker serves: "kbo-alpha-hppa-mips@host", or for many
    # arches (--auto) just "kbo@host"; never the first arch of many, which misleads.
    label = "kbo-" + "-".join(names) if len(names) <= 3 else "kbo"
    name = args.name or f"{label}@{socket.gethostname()}"
    slots = args.slots or config.build_slots
    executors = {c.arch: tuple(e for e in c.executors if e != "none") for c in served}
    announce.announce_forever(
        app,
        announce.announcement(name, socket.gethostname(), executors, slots),
        max(1.0, config.lease_seconds / 3),
    )
    app.worker_main(
        [
            "worker",
            "--queues",
            ",".join(build_queue(a) for a in names),
            "--concurrency",
            str(slots),
            "--pool",
            "prefork",
            "--optimization",
            "fair",
            "--hostname",
            name,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ]
    )
    return EXIT_OK
