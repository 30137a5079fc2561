"""Embedded mode: `kbo submit` starts the coordinator and local workers it needs, and stops
them when it is done. A coordinator already running (its lock is held) is left alone."""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from kbo.config import Config
from kbo.errors import InfraError, UserError


def try_lock(path: Path, what: str) -> int | None:
    """Take the lock file ``path`` without waiting, writing our pid in it; the returned
    descriptor holds the lock until it is closed or the process ends. None when another
    process holds it (``lock_holder`` names it)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"cannot create the {what} lock: {e.strerror}", str(path)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def lock_holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


def coordinator_lock(config: Config) -> int:
    """Hold the coordinator lock for this process's life; one coordinator per state dir."""
    fd = try_lock(config.state_path / "coordinator.lock", "coordinator")
    if fd is None:
        raise UserError(
            "a coordinator is already running for this state directory", str(config.state_path)
        )
    return fd


def coordinator_running(config: Config) -> bool:
    path = config.state_path / "coordinator.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the `kbo submit` that started us dies, however it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalServices:
    """Coordinator and worker processes started for one command; stopped on exit."""

    def __init__(self, config: Config, config_path: str | None, *, workers: bool) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []
        self.logs: list[Path] = []
        logs = config.state_path / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        base = [sys.executable, "-m", "kbo.cli"]
        extra = ["--config", config_path] if config_path else []
        if not coordinator_running(config):
            self._start([*base, "coordinator", *extra], logs / "coordinator.log")
        if workers:
            self._start([*base, "worker", "--auto", *extra], logs / "worker.log")

    def _start(self, argv: list[str], log: Path) -> None:
        self.names.append(argv[3])
        self.logs.append(log)
        with log.open("ab") as out:
            self.processes.append(
                subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            )

    def check(self) -> None:
        """Raise if a service this command started has died: nothing would build its jobs."""
        for process, name, log in zip(self.processes, self.names, self.logs, strict=True):
            if process.poll() is not None:
                raise InfraError(
                    f"the local {name} exited with status {process.returncode}", str(log)
                )

    def __enter__(self) -> LocalServices:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
