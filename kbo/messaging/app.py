"""The Celery app: JSON only, one queue per Debian arch, settings for builds lasting hours.

Embedded (no ``broker_url``): kombu's filesystem transport under ``state_dir``, and a
filesystem result backend that carries the coordinator's replies. With Redis, the
same code runs against ``redis://`` for both. Replies are transport only: the truth
is kbo's SQLite state.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from celery import Celery
from celery.schedules import crontab
from kombu.entity import Exchange, Queue
from kombu.utils.url import maybe_sanitize_url

from kbo.config import Config
from kbo.errors import UserError

COORDINATOR_QUEUE = "kbo.coordinator"
# Heartbeats travel apart, so slow work on the coordinator's queue never holds them up.
HEARTBEAT_QUEUE = "kbo.heartbeat"
# Embedded mode: kombu's and Celery's file-based parts, with writes made atomic.
ATOMIC_TRANSPORT = "kbo.messaging.filesystem_broker:Transport"
ATOMIC_BACKEND = "kbo.messaging.filesystem_broker:ResultBackend"


def build_queue(arch: str) -> str:
    return f"build.{arch}"


def heartbeat_queue() -> Queue:
    return Queue(HEARTBEAT_QUEUE, Exchange(HEARTBEAT_QUEUE), HEARTBEAT_QUEUE)


def safe_url(url: str) -> str:
    """The broker URL without its password, for messages."""
    return str(maybe_sanitize_url(url)) if url else "the embedded filesystem broker"


def make_app(config: Config) -> Celery:
    app = Celery("kbo", set_as_current=False)
    transport_options: dict[str, object] = {"visibility_timeout": config.visibility_timeout}
    if config.embedded:
        group = _worker_group(config)
        broker = "filesystem://"
        backend = f"{ATOMIC_BACKEND}+file://{_dir(config.state_path / 'results', group)}"
        folder = str(_dir(config.state_path / "broker", group))
        transport_options |= {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": str(_dir(config.state_path / "broker-control", group)),
            "polling_interval": 0.05,
        }
    else:
        broker = backend = config.broker_url
    if config.embedded:
        app.conf.broker_transport = ATOMIC_TRANSPORT
    app.conf.update(
        broker_url=broker,
        result_backend=backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # A build message is acknowledged only when the build is over, and comes back
        # if the worker process dies; our own lease catches what the broker cannot.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=False,
        result_expires=24 * 3600,
        broker_transport_options=transport_options,
        result_backend_transport_options={"visibility_timeout": config.visibility_timeout},
        visibility_timeout=config.visibility_timeout,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_create_missing_queues=True,
        task_default_queue=COORDINATOR_QUEUE,
        task_queues=[Queue(COORDINATOR_QUEUE, Exchange(COORDINATOR_QUEUE), COORDINATOR_QUEUE)],
        task_time_limit=None,
        enable_utc=True,
    )
    return app


def snapshot_schedule(config: Config) -> float | crontab:
    """``snapshot_schedule`` as Celery beat reads it: seconds, or a crontab line."""
    text = config.snapshot_schedule.strip()
    if text.isdigit() and int(text) > 0:
        return float(text)
    fields = text.split()
    if len(fields) == 5:
        try:
            return crontab(*fields)
        except ValueError:
            pass
    raise UserError(
        f'snapshot_schedule {text!r} is neither seconds nor a crontab line like "0 */6 * * *"',
        config.source,
    )


def _worker_group(config: Config) -> int | None:
    """Run as root, embedded mode shares its message files with the worker, which runs
    as ``worker_user``: its group may write them (set-group-id folders, umask 002)."""
    if os.geteuid() != 0:
        return None
    try:
        gid = pwd.getpwnam(config.worker_user).pw_gid
    except KeyError:
        return None  # the worker refuses to start, and says why
    os.umask(0o002)
    return gid


def _dir(path: Path, group: int | None = None) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        if group is not None:
            os.chown(path, 0, group)
            path.chmod(0o2775)
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        os.chown(entry.path, 0, group, follow_symlinks=False)
                        os.chmod(entry.path, 0o664, follow_symlinks=False)
    except OSError as e:
        raise UserError(f"cannot create the directory: {e.strerror}", str(path)) from None
    return path
