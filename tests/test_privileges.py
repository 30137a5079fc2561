"""A worker started as root hands its directories to its user without following a
link, whatever the depth of the tree a build left."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from kbo.workers import privileges
from tests.conftest import WORKER_USER


def test_everything_below_is_handed_over_links_not_followed(tmp_path: Path) -> None:
    user = pwd.getpwnam(WORKER_USER)
    (tmp_path / "host").write_text("root's\n")
    mine = tmp_path / "worker"
    (mine / "a" / "b").mkdir(parents=True)
    (mine / "a" / "b" / "file").write_text("x")
    (mine / "a" / "link").symlink_to(tmp_path / "host")
    (mine / "a" / "dirlink").symlink_to(tmp_path)
    privileges._hand_over(mine, user.pw_uid, user.pw_gid)
    for path in (mine, mine / "a", mine / "a/b", mine / "a/b/file", mine / "a/link"):
        assert path.lstat().st_uid == user.pw_uid, path
    assert (mine / "a" / "dirlink").lstat().st_uid == user.pw_uid
    assert (tmp_path / "host").stat().st_uid == 0
    assert tmp_path.stat().st_uid == 0


def test_a_tree_deeper_than_python_recurses_is_handed_over(tmp_path: Path) -> None:
    """A kept failed build, or a prepared tree, handed over when worker_user changes."""
    user = pwd.getpwnam(WORKER_USER)
    top = tmp_path / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(1200):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    try:
        privileges._chown_all(top, user.pw_uid, user.pw_gid)
        assert top.stat().st_uid == user.pw_uid
        assert os.stat("d/" * 1200, dir_fd=os.open(top, os.O_RDONLY)).st_uid == user.pw_uid
    finally:  # pytest's own clean-up of its folder recurses, and fails on such a tree
        subprocess.run(["rm", "-rf", "--", str(top)], check=True)
