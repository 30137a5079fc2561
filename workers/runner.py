"""The one way kbo runs a command: an argv list, its output streamed to a log, two
timeouts (total and no-output), an optional watchdog (a disk limit, say), a cap on the
log, and its whole process group killed when it ends, or at once when the build it
belongs to is stopped (``stopped_by``).

It returns a result rather than raising on a non-zero exit.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kbo.text import in_units

KILL_GRACE_SECONDS = 5.0
WATCH_SECONDS = 10.0
# A log (a job's, all its commands together) holds at most this much. The log lies
# outside the job directory, where the disk watchdog does not look, and endless output
# would otherwise fill the worker's disk: a command that writes more is stopped.
MAX_LOG_BYTES = 1 << 30
Watch = Callable[[], str | None]
# What stops every command this thread runs: set by ``stopped_by``.
_stopper = threading.local()


@contextmanager
def stopped_by(event: threading.Event, why: str) -> Iterator[None]:
    """Within the block, every command this thread runs is killed as soon as ``event`` is
    set, and none starts after: the build a worker no longer owns stops wherever it is."""
    _stopper.current = (event, why)
    try:
        yield
    finally:
        _stopper.current = None


def _stop_reason() -> str | None:
    current: tuple[threading.Event, str] | None = getattr(_stopper, "current", None)
    return current[1] if current is not None and current[0].is_set() else None


@dataclass(frozen=True)
class RunResult:
    returncode: int | None
    timed_out: str | None
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.timed_out is None

    def describe(self) -> str:
        if self.timed_out:
            return self.timed_out
        return f"exited with status {self.returncode}"


def run(
    argv: Sequence[str],
    *,
    log: BinaryIO,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float,
    no_output_timeout: float,
    watch: Watch | None = None,
) -> RunResult:
    """Run ``argv``; ``watch``, called every ``WATCH_SECONDS``, stops it by returning why,
    and so does ``log`` growing past ``MAX_LOG_BYTES``."""
    log.write(f"$ {shlex.join(argv)}\n".encode())
    log.flush()
    if stopped := _stop_reason():
        log.write(f"kbo: not run: {stopped}\n".encode())
        return RunResult(None, stopped, 0.0)
    start = time.monotonic()
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        log.write(f"kbo: cannot run {argv[0]}: {e.strerror}\n".encode())
        return RunResult(None, f"cannot run {argv[0]}: {e.strerror}", 0.0)
    assert process.stdout is not None
    timed_out = _stream(process, log, start, (timeout, no_output_timeout), watch)
    if timed_out:
        _kill_group(process)
    returncode = process.wait()
    _kill_group(process)  # whatever the command left behind in its group
    log.flush()
    return RunResult(returncode, timed_out, time.monotonic() - start)


def _stream(
    process: subprocess.Popen[bytes],
    log: BinaryIO,
    start: float,
    limits: tuple[float, float],
    watch: Watch | None,
) -> str | None:
    timeout, quiet = limits
    assert process.stdout is not None
    fd = process.stdout.fileno()
    os.set_blocking(fd, False)
    last_output = last_watch = start
    exited_at: float | None = None
    closed = False  # every writer closed the pipe: all the output is read
    logged = _size_of(log)
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            # Once the pipe is closed there is nothing to wait on but the exit: look often.
            for _ in selector.select(timeout=0.05 if closed else 0.5):
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    # A command that closed its output and runs on is still held to its
                    # timeouts, not waited for without end.
                    selector.unregister(fd)
                    closed = True
                    break
                log.write(chunk)
                last_output = time.monotonic()
                logged += len(chunk)
                if logged > MAX_LOG_BYTES:
                    too_much = f"wrote more than {in_units(MAX_LOG_BYTES)} of log"
                    log.write(f"\nkbo: killed: {too_much}\n".encode())
                    return too_much
            now = time.monotonic()
            if process.poll() is not None:
                if closed:
                    return None
                # The command is over; a child still holding the pipe gets a short grace.
                exited_at = exited_at or now
                if now - exited_at > 1.0:
                    return None
            elif now - start > timeout:
                log.write(f"\nkbo: killed after the total timeout of {timeout:.0f} s\n".encode())
                return f"timed out after {timeout:.0f} s"
            elif now - last_output > quiet:
                log.write(f"\nkbo: killed after {quiet:.0f} s without output\n".encode())
                return f"no output for {quiet:.0f} s"
            elif stopped := _stop_reason():
                log.write(f"\nkbo: killed: {stopped}\n".encode())
                return stopped
            elif watch is not None and now - last_watch > WATCH_SECONDS:
                last_watch = now
                if problem := watch():
                    log.write(f"\nkbo: killed: {problem}\n".encode())
                    return problem


def _size_of(log: BinaryIO) -> int:
    """What ``log`` holds already (0 for a stream that cannot say)."""
    try:
        return log.tell()
    except (OSError, ValueError):
        return 0


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """TERM, then KILL, the whole process group: nothing the build started survives it.

    The group leader is reaped as soon as it exits: unreaped, its zombie would keep the
    group "alive" to ``killpg(pgid, 0)`` for the whole grace."""
    pgid = process.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while time.monotonic() < deadline:
        process.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
