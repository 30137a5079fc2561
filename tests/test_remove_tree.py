"""A job directory is removed whatever the build left in it: a tree thousands of levels
deep, directories it made unreadable, symlinks to the host's files."""

from __future__ import annotations

import io
import os
import pwd
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kbo.config import Config
from kbo.workers import prepared_tree, sandbox
from kbo.workers.worker_paths import remove_tree
from tests.conftest import ROOT, WORKER_USER

AS_WORKER = ["setpriv", f"--reuid={WORKER_USER}", f"--regid={WORKER_USER}", "--clear-groups"]


@pytest.fixture(autouse=True)
def no_tree_left_behind(tmp_path: Path) -> Iterator[None]:
    """Whatever the test's outcome, remove its trees with rm: pytest's own clean-up of
    old temporary folders (shared by every test session on the host) cannot."""
    yield
    subprocess.run(["rm", "-rf", "--", str(tmp_path)], check=False)


def make_deep_tree(root: Path, depth: int) -> None:
    """``root/d/d/.../d`` ``depth`` levels deep, a file every 100 levels: far past
    PATH_MAX, so it is made relative to each directory's descriptor, as a build can."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for level in range(depth):
        os.mkdir("d", dir_fd=fd)
        if level % 100 == 0:
            os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)


def make_locked_tree(root: Path, outside: Path) -> None:
    """Directories and files with the modes a build can leave, and links out of the tree."""
    for name, mode in (("none", 0o000), ("read-only", 0o500), ("exec-only", 0o100)):
        directory = root / name
        (directory / "inner").mkdir(parents=True)
        (directory / "inner" / "file").write_text("x")
        (directory / "file").write_text("x")
        (directory / "file").chmod(0o000)
        (directory / "link").symlink_to(outside)
        make_deep_tree(directory / "inner", 500)
        (directory / "inner").chmod(mode)
        directory.chmod(mode)
    (root / "to-outside").symlink_to(outside.parent)


@contextmanager
def few_descriptors(spare: int) -> Iterator[None]:
    """At most ``spare`` more open files than this process holds now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + spare, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_tree_3000_deep_is_removed_with_few_descriptors(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("host file")
    job = tmp_path / "job"
    job.mkdir()
    make_deep_tree(job, 3000)
    (job / "d" / "d" / "link").symlink_to(outside)
    with few_descriptors(32):
        remove_tree(job)
    assert not job.exists()
    assert (outside / "keep").read_text() == "host file"


def test_modes_the_build_left_do_not_stop_removal(tmp_path: Path) -> None:
    """Run as the worker's unprivileged user, who (unlike root) is held to modes."""
    user = pwd.getpwnam(WORKER_USER)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("host file")
    (outside / "keep").chmod(0o640)
    builds = tmp_path / "builds"
    job = builds / "job"
    job.mkdir(parents=True)
    for path in (outside, outside / "keep", builds, job):
        os.chown(path, user.pw_uid, user.pw_gid)

    def as_worker(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*AS_WORKER, "--", sys.executable, "-c", code, str(job), str(outside / "keep")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )

    made = as_worker(
        "import sys; from pathlib import Path; from tests.test_remove_tree import *;"
        "make_locked_tree(Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    assert made.returncode == 0, made.stderr
    removed = as_worker(
        "import sys; from pathlib import Path; from kbo.workers.worker_paths import remove_tree;"
        "remove_tree(Path(sys.argv[1]))"
    )
    assert removed.returncode == 0, removed.stderr
    assert not job.exists()
    assert (outside / "keep").read_text() == "host file"
    assert (outside / "keep").stat().st_mode & 0o777 == 0o640


def test_a_missing_tree_or_a_symlink_in_its_place(tmp_path: Path) -> None:
    remove_tree(tmp_path / "never-made")
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "keep").write_text("x")
    (tmp_path / "job").symlink_to(tmp_path / "target")
    remove_tree(tmp_path / "job")
    assert not (tmp_path / "job").is_symlink()
    assert (tmp_path / "target" / "keep").exists()


def test_a_prepared_tree_left_half_made_is_removed_before_preparing_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tree of a failed preparation is what ``debian/rules orig`` left: hostile."""
    config = Config(state_dir=str(tmp_path / "state"))
    commit = "c" * 40
    left = config.cache_path / "trees" / commit
    (left / "src").mkdir(parents=True)
    make_deep_tree(left / "src", 1500)
    seen = []

    def prepare_again(*args: object) -> prepared_tree.Prepared:
        seen.append(left.exists())
        (left / "src").mkdir(parents=True)
        make_deep_tree(left / "src", 1500)
        raise prepared_tree.PrepareError("debian/rules orig failed")

    monkeypatch.setattr(prepared_tree, "_prepare", prepare_again)
    spec = sandbox.Spec(etc=str(tmp_path / "etc"))
    with pytest.raises(prepared_tree.PrepareError):
        prepared_tree.prepare(config, "src", commit, io.BytesIO(), spec)
    assert seen == [False]  # gone before preparing again
    assert not left.exists()  # and removed after that failed too
