"""``kbo coordinator``: record submissions and reports, and sweep lapsed leases."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from typing import Any

from kbo.cli.common import add_config_argument, setup_logging
from kbo.config import load_config
from kbo.errors import EXIT_OK, UserError


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "coordinator",
        help="run the coordinator: the one writer of kbo's state",
        description="Consume the coordinator queue: plan submissions, record results, "
        "re-enqueue jobs whose worker stopped renewing its lease.",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--beat",
        action="store_true",
        help="also run snapshots on snapshot_schedule (Celery beat); cron must not then",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo import messaging
    from kbo.cli.local import coordinator_lock
    from kbo.messaging.app import COORDINATOR_QUEUE, make_app, snapshot_schedule
    from kbo.orchestrator.coordinator import Coordinator, start_sweeper
    from kbo.orchestrator.coordinator import register as register_tasks
    from kbo.orchestrator.state import State

    config = load_config(args.config)
    setup_logging()
    # One line per task with its whole result drowns the log (followers poll twice a
    # second); kbo's own loggers say what matters.
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    # Nor one "Task ... received" per poll of a waiting client: the coordinator logs each
    # event that matters itself (a run recorded, an attempt claimed, a result, a refusal).
    logging.getLogger("celery.worker.strategy").setLevel(logging.WARNING)
    if args.beat and not config.snapshot_schedule:
        raise UserError("--beat needs snapshot_schedule in the config", config.source)
    State(config.database).check_writable()  # fail before taking anything from the queue
    lock = coordinator_lock(config)
    app = make_app(config)
    messaging.check_broker(app)
    if restored := messaging.restore_held(app, COORDINATOR_QUEUE):
        logging.getLogger("kbo.coordinator").info(
            "%d message(s) a coordinator took and never answered are queued again", restored
        )
    coordinator = Coordinator(config, app)
    register_tasks(app, coordinator)
    coordinator.resume_bisections()
    beat = []
    if args.beat:
        app.conf.beat_schedule = {
            "kbo-snapshot": {
                "task": "kbo.snapshot",
                "schedule": snapshot_schedule(config),
                "args": [
                    {"reason": "scheduled (beat)", "submitter": f"beat@{socket.gethostname()}"}
                ],
            }
        }
        beat = ["--beat", "--schedule", str(config.state_path / "beat-schedule")]
    elif config.snapshot_schedule:
        logging.getLogger("kbo.coordinator").warning(
            "snapshot_schedule is set but this coordinator runs without --beat: "
            "no scheduled snapshots"
        )
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
                *beat,
            ]
        )
    finally:
        stop.set()
        os.close(lock)
    return EXIT_OK
