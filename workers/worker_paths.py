"""Where a worker keeps its files, apart from the coordinator's: a worker started as
root runs as ``worker_user`` and owns these, and nothing else of the state directory."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kbo.config import Config

log = logging.getLogger("kbo.worker")

# A job directory with no lock older than this is left over from a dead worker.
ORPHAN_SECONDS = 60
KEPT = ".kept"  # a failed build kept for inspection (keep_failed_builds): not an orphan


def worker_dir(config: Config) -> Path:
    """Job directories, raw logs, artifacts, git mirrors and the steps' /etc."""
    return config.state_path / "worker"


def mirrors(config: Config) -> Path:
    return worker_dir(config) / "repos"


def owned_by_worker(config: Config) -> list[Path]:
    """What the worker writes: its own directory and the cache (downloads, prepared
    trees, chroots, ccache)."""
    return [worker_dir(config), config.cache_path]


@contextlib.contextmanager
def job_directory(config: Config, prefix: str) -> Iterator[Path]:
    """A new job directory, locked while the job runs: ``remove_orphans`` leaves it."""
    builds = worker_dir(config) / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=builds))
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield root


def remove_orphans(config: Config) -> list[str]:
    """Remove the job directories of builds no worker runs any more (their worker was
    killed); the names removed."""
    builds = worker_dir(config) / "builds"
    removed = []
    with contextlib.suppress(FileNotFoundError), os.scandir(builds) as entries:
        for entry in entries:
            root = Path(entry.path)
            if not entry.is_dir(follow_symlinks=False) or (root / KEPT).exists() or _in_use(root):
                continue
            try:
                remove_tree(root)
            except OSError as e:
                log.warning("cannot remove the orphaned build directory %s: %s", root, e)
                continue
            removed.append(entry.name)
    return removed


def _in_use(root: Path) -> bool:
    try:
        fd = os.open(root / ".lock", os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:  # being made, or made by a worker that died at once
        return time.time() - root.stat().st_mtime < ORPHAN_SECONDS
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def remove_tree(path: Path) -> None:
    """Remove a job directory whatever the build left in it; OSError names the first thing
    that could not be removed, after everything else that could be was.

    The build controls every name below ``path``: a tree deeper than any path may be
    long (or Python may recurse), directories with mode 000, symlinks to the host's
    files. So the walk is iterative and works relative to directory descriptors opened
    with ``O_NOFOLLOW``, holding at most ``MAX_OPEN_DIRS`` of them; a directory it closed
    on the way down is reopened through its child's ``..`` and must be the same one.
    """
    try:
        top = _open_dir(path, None)
    except FileNotFoundError:
        return
    except NotADirectoryError:  # a symlink or a file in the directory's place
        os.unlink(path)
        return
    stack = [_Dir("", top, os.fstat(top))]
    problems: list[str] = []
    try:
        while stack:
            current = stack[-1]
            assert current.fd is not None  # the deepest directory is always open
            if current.subdirs is None:
                current.subdirs = _remove_files(current.fd, problems)
            if current.subdirs:
                _descend(stack, current.subdirs.pop(), problems)
            else:
                _leave(stack, path, problems)
    finally:  # also on an error that ends the walk
        for directory in stack:
            if directory.fd is not None:
                os.close(directory.fd)
    if problems:
        raise OSError(f"cannot remove all of {path}: {problems[0]}")


# Directory descriptors remove_tree holds at once; more open ones only save reopenings.
MAX_OPEN_DIRS = 16
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class _Dir:
    """A directory on remove_tree's way down: its name in its parent, its descriptor
    (None once closed to stay within MAX_OPEN_DIRS), and the subdirectories still to go."""

    name: str
    fd: int | None
    identity: os.stat_result
    subdirs: list[str] | None = None


def _open_dir(name: str | Path, dir_fd: int | None) -> int:
    """``name`` opened as a directory, never through a symlink (NotADirectoryError when
    it is none), and made the worker's to list and empty whatever mode the build set."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        # Mode 000 or 100: a descriptor that needs no permission, to change the mode.
        handle = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
        try:
            os.chmod(f"/proc/self/fd/{handle}", 0o700)
        finally:
            os.close(handle)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NotADirectoryError(e.errno, "a symlink", str(name)) from None
        raise
    if os.fstat(fd).st_mode & 0o700 != 0o700:
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o700)
    return fd


def _descend(stack: list[_Dir], name: str, problems: list[str]) -> None:
    """Open the subdirectory ``name`` of the deepest directory, onto the stack."""
    assert stack[-1].fd is not None
    try:
        fd = _open_dir(name, stack[-1].fd)
    except NotADirectoryError:  # replaced since it was listed: not descended
        _record(problems, f"{name} changed while being removed")
        return
    except OSError as e:
        _record(problems, f"{name}: {e.strerror}")
        return
    stack.append(_Dir(name, fd, os.fstat(fd)))
    if len(stack) > MAX_OPEN_DIRS and (far := stack[-MAX_OPEN_DIRS - 1]).fd is not None:
        os.close(far.fd)
        far.fd = None


def _leave(stack: list[_Dir], top: Path, problems: list[str]) -> None:
    """The deepest directory is empty: close it and remove it from its parent."""
    current = stack.pop()
    assert current.fd is not None
    try:
        if stack and stack[-1].fd is None:
            stack[-1].fd = _reopen_parent(current.fd, stack[-1])
    finally:
        os.close(current.fd)
    try:
        if stack:
            os.rmdir(current.name, dir_fd=stack[-1].fd)
        else:
            os.rmdir(top)
    except OSError as e:
        _record(problems, f"{current.name or top.name}: {e.strerror}")


def _remove_files(fd: int, problems: list[str]) -> list[str]:
    """Unlink everything in the directory but subdirectories; their names."""
    subdirs = []
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                else:
                    os.unlink(entry.name, dir_fd=fd)
            except OSError as e:
                _record(problems, f"{entry.name}: {e.strerror}")
    return subdirs


def _reopen_parent(child: int, parent: _Dir) -> int:
    fd = os.open("..", _DIR_FLAGS, dir_fd=child)
    if not os.path.samestat(os.fstat(fd), parent.identity):
        os.close(fd)
        raise OSError(f"{parent.name} was moved while being removed")
    return fd


def _record(problems: list[str], problem: str) -> None:
    if len(problems) < 10:
        problems.append(problem)
