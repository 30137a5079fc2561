"""The worker reads build output only through job_files: no symlink followed, no FIFO
waited on, no device opened, no huge file read. Each case is what a build can leave."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kbo.workers import artifacts, job_files

DISK_LIMIT = 40 << 30  # job_disk_gb's default


@pytest.fixture
def build(tmp_path: Path) -> Path:
    (tmp_path / "secret").write_text("root:$6$hash:19000::::::\n")
    build = tmp_path / "build"
    build.mkdir()
    return build


def test_a_regular_file_is_read(build: Path) -> None:
    (build / "debian").mkdir()
    (build / "debian/control").write_text("Source: linux\n")
    assert job_files.read_text(build, "debian/control") == "Source: linux\n"
    assert job_files.is_regular(build, "debian/control")


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.symlink_to("../secret"), "is a symlink, not a regular file"),
        (lambda p: os.mkfifo(p), "is not a regular file"),
        (lambda p: os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(1, 3)), "is not a regular file"),
        (lambda p: p.mkdir(), "is not a regular file"),
    ],
    ids=["symlink", "fifo", "device", "directory"],
)
def test_anything_but_a_regular_file_is_refused_at_once(
    build: Path, make: Callable[[Path], object], says: str
) -> None:
    make(build / "linux-image.deb")
    start = time.monotonic()
    with pytest.raises(job_files.UnsafeFile, match=says):
        artifacts.collect(build, build.parent / "store", DISK_LIMIT)
    assert time.monotonic() - start < 5  # a FIFO does not block the worker
    assert not job_files.is_regular(build, "linux-image.deb")
    assert not (build.parent / "store" / "linux-image.deb").exists()


def test_a_symlinked_directory_on_the_way_is_not_followed(build: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/control").write_text("outside\n")
    (build / "debian").symlink_to(tmp_path / "elsewhere")
    assert (build / "debian/control").read_text() == "outside\n"  # a plain open follows it
    with pytest.raises(job_files.UnsafeFile, match="debian is not a directory"):
        job_files.read_text(build, "debian/control")
    with pytest.raises(job_files.UnsafeFile, match="not a path inside"):
        job_files.read_text(build, "../secret")


def test_a_huge_sparse_file_is_refused_unread(build: Path) -> None:
    with (build / "huge.deb").open("wb") as f:
        f.truncate(100 << 30)  # 100 GiB, no blocks
    with pytest.raises(job_files.UnsafeFile, match="over the limit"):
        artifacts.collect(build, build.parent / "store", DISK_LIMIT)
    assert job_files.disk_usage(build) < 1 << 20  # counted by blocks, not by size
