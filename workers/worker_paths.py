"""Where a worker keeps its files, apart from the coordinator's: a worker started as
root runs as ``worker_user`` and owns these, and nothing else of the state directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kbo.config import Config

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
            remove_tree(root)
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
    """Remove a job directory whatever modes the build left in it."""

    def writable_and_retry(function: Any, name: str, _: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
                shutil.rmtree(name, ignore_errors=True)
            else:
                function(name)

    shutil.rmtree(path, onerror=writable_and_retry)
