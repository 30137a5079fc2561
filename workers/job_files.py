"""Read what a build left behind without trusting it.

A build controls every name in its job directory: any of them may be a symlink to a
host file, a FIFO that blocks a reader for ever, a device, or a sparse file of 100 GB.
The worker therefore opens build output only through here: each path component is
opened relative to the one before with ``O_NOFOLLOW``, the file must be a regular file
(``O_NONBLOCK`` so a FIFO cannot hang the open), and reads stop at a size limit.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from kbo.errors import UserError


class UnsafeFile(UserError):
    """A file the build left is not a regular file under its job directory: the
    commit's doing."""


@contextmanager
def open_regular(root: Path, relative: str, limit: int) -> Iterator[BinaryIO]:
    """``root/relative`` opened for reading: a regular file of at most ``limit`` bytes,
    reached without following any symlink below ``root``."""
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafeFile(f"{relative!r} is not a path inside the job directory")
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(
                    part,
                    os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                    dir_fd=directory,
                )
            except OSError as e:
                raise UnsafeFile(f"{relative}: {part} is not a directory ({e.strerror})") from None
            os.close(directory)
            directory = inner
        try:
            fd = os.open(
                parts[-1],
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=directory,
            )
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafeFile(f"{relative} is a symlink, not a regular file") from None
            raise UnsafeFile(f"{relative}: cannot open it safely ({e.strerror})") from None
    finally:
        os.close(directory)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafeFile(f"{relative} is not a regular file")
    if info.st_size > limit:
        os.close(fd)
        raise UnsafeFile(f"{relative} is {info.st_size} bytes, over the limit of {limit}")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as f:
        yield f


def is_regular(root: Path, relative: str) -> bool:
    """Whether ``root/relative`` is a regular file, reached without following symlinks."""
    try:
        with open_regular(root, relative, limit=1 << 62):
            return True
    except (UnsafeFile, OSError):
        return False


def read_text(root: Path, relative: str, limit: int = 4 << 20) -> str:
    with open_regular(root, relative, limit) as f:
        return f.read(limit + 1).decode("utf-8", errors="replace")


def disk_usage(directory: Path) -> int:
    """Bytes allocated under ``directory``, counted without following symlinks."""
    total = 0
    stack = [str(directory)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += info.st_blocks * 512
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


def disk_problem(directory: Path, limit: int, what: str = "the job directory") -> str | None:
    """Why ``directory`` is over ``limit`` bytes (a runner watchdog's answer), or None."""
    if disk_usage(directory) > limit:
        return f"used more than {limit >> 30} GiB of disk under {what}"
    return None
