"""Shared test fixtures: the real Debian trees in ../shared/fixtures, and a real `kbo` process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.services import RedisServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"
LINUX_61 = FIXTURES / "linux-6.1.176-1"
LINUX_612 = FIXTURES / "linux-6.12.38-1"
KBO = Path(sys.executable).parent / "kbo"

RunKbo = Callable[..., subprocess.CompletedProcess[str]]


WORKER_USER = "kbo"


def reachable_by_workers(path: Path) -> Path:
    """Make a test's directory reachable by the unprivileged user workers run as: a
    worker started by a test drops to it, and its builds read the test's recipes and
    repository. The directories become traversable (o+x), not listable."""
    for directory in (path, *path.parents):
        if directory.stat().st_uid != os.geteuid() or directory == Path("/tmp"):
            break
        directory.chmod(directory.stat().st_mode | 0o011)
    return path


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    """pytest's own, made reachable by workers (``reachable_by_workers``)."""
    return reachable_by_workers(tmp_path)


@pytest.fixture
def kbo() -> RunKbo:
    """Run the installed ``kbo`` console script as a real process."""

    def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KBO), *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False
        )

    return run


def matrix_jobs(kbo: RunKbo, source: Path, *args: str) -> set[tuple[str, str, str]]:
    """(arch, featureset, flavour) of every job ``kbo matrix --json`` prints."""
    result = kbo("matrix", source, "--json", *args)
    assert result.returncode == 0, result.stderr
    return {(j["arch"], j["featureset"], j["flavour"]) for j in json.loads(result.stdout)}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free port, with AOF on, for one test."""
    from tests.services import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def copy_debian(fixture: Path, dest: Path) -> Path:
    """Copy a fixture's debian/ (without its megabytes of kernel configs) to ``dest``."""
    shutil.copytree(
        fixture / "debian",
        dest / "debian",
        ignore=lambda d, names: [
            n for n in names if n.startswith("config") and n != "config" and not Path(d, n).is_dir()
        ],
    )
    for path in (dest / "debian").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (dest / "debian").chmod(0o755)
    return dest


def write_files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env={
            "GIT_AUTHOR_NAME": "Kernel Maintainer",
            "GIT_AUTHOR_EMAIL": "km@example.org",
            "GIT_COMMITTER_NAME": "Kernel Maintainer",
            "GIT_COMMITTER_EMAIL": "km@example.org",
            "HOME": str(repo),
            "PATH": "/usr/bin:/bin",
        },
    ).stdout.strip()
