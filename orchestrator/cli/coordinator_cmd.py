"""``kbo coordinator``: record submissions and reports, and sweep lapsed leases."""

from __future__ import annotations

import argparse
import os
import socket
from typing import Any

from orchestrator.cli.common import add_config_argument, setup_logging
from orchestrator.config import load_config
from orchestrator.errors import EXIT_OK
from orchestrator.local import coordinator_lock
from orchestrator.state import State


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "coordinator",
        help="run the coordinator: the one writer of kbo's state",
        description="Consume the coordinator queue: plan submissions, record results, "
        "re-enqueue jobs whose worker stopped renewing its lease.",
    )
    add_config_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator import messaging
    from orchestrator.celery_app import COORDINATOR_QUEUE, make_app
    from orchestrator.coordinator import Coordinator, start_sweeper
    from orchestrator.coordinator import register as register_tasks

    config = load_config(args.config)
    setup_logging()
    State(config.database).check_writable()  # fail before taking anything from the queue
    lock = coordinator_lock(config)
    app = make_app(config)
    messaging.check_broker(app)
    coordinator = Coordinator(config, app)
    register_tasks(app, coordinator)
    stop = start_sweeper(coordinator)
    try:
        app.worker_main(
            [
                "worker",
                "--queues",
                COORDINATOR_QUEUE,
                "--pool",
                "solo",
                "--hostname",
                f"kbo-coordinator@{socket.gethostname()}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ]
        )
    finally:
        stop.set()
        os.close(lock)
    return EXIT_OK
