"""The two roots of kbo's errors, each carrying the exit status the CLI returns.

A ``UserError`` is bad input: the user can fix it (exit 2). An ``InfraError`` is a
machine or service that failed (exit 3). Both print as one line that names what
and where, never as a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_NOT_OK = 1
EXIT_BAD_INPUT = 2
EXIT_SERVICE = 3
EXIT_TIMEOUT = 124  # `kbo submit --wait --timeout`: stopped waiting; the jobs stay queued
EXIT_INTERNAL = 70  # a bug in kbo: one line, the traceback kept in a file


class KboError(Exception):
    exit_status = EXIT_BAD_INPUT

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class UserError(KboError):
    """Bad input: a malformed file, an unknown name, a missing path."""

    exit_status = EXIT_BAD_INPUT


class InfraError(KboError):
    """A service or the machine failed: broker, database, disk, a tool that crashed."""

    exit_status = EXIT_SERVICE


class StoppedWaiting(KboError):
    """A client gave up waiting after the time it was given (``--timeout``); what it waited
    for goes on without it."""

    exit_status = EXIT_TIMEOUT
