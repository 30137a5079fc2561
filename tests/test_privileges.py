"""A worker started as root hands its directories to its user without following a
link, even one swapped in for a directory while it walks."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

import pytest

from kbo.workers import privileges
from tests.conftest import WORKER_USER


def test_a_directory_swapped_for_a_symlink_mid_walk_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = pwd.getpwnam(WORKER_USER)
    host = tmp_path / "host"  # root's, like /etc
    host.mkdir()
    (host / "file").write_text("root's\n")
    mine = tmp_path / "worker"
    (mine / "trees" / "a").mkdir(parents=True)
    (mine / "trees" / "a" / "file").write_text("x")
    real_chown, real_lchown = os.chown, os.lchown

    def race(name: Any) -> None:
        """A build racing the walk: once ``trees/a`` is listed, it becomes a link to the
        host's directory, just before its file is handed over."""
        if os.path.basename(name) == "file" and not (mine / "trees" / "a").is_symlink():
            (mine / "trees" / "a").rename(mine / "trees" / "a-moved")
            (mine / "trees" / "a").symlink_to(host)

    def chown(name: Any, *args: Any, **kwargs: Any) -> None:
        race(name)
        real_chown(name, *args, **kwargs)

    def lchown(name: Any, *args: Any) -> None:
        race(name)
        real_lchown(name, *args)

    monkeypatch.setattr(os, "chown", chown)
    monkeypatch.setattr(os, "lchown", lchown)
    privileges._hand_over(mine, user.pw_uid, user.pw_gid)
    monkeypatch.undo()
    assert (mine / "trees" / "a").is_symlink()  # the race happened
    assert (host / "file").stat().st_uid == 0
    assert host.stat().st_uid == 0
    assert (mine / "trees" / "a-moved" / "file").stat().st_uid == user.pw_uid


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
