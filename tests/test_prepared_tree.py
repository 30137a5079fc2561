"""Preparing a commit's tree reads what the commit holds: limits fit Debian's own."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from kbo.config import Config
from kbo.packaging import download, repository
from kbo.workers import prepared_tree, sandbox
from tests.conftest import LINUX_61


class Fetched(Exception):
    """Preparing got as far as fetching the orig tarball."""


def test_a_changelog_past_4_mib_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's kernel changelog is 3.2 MB and grows with every upload."""
    changelog = (LINUX_61 / "debian" / "changelog").read_bytes()
    assert len(changelog) > 3 << 20

    def export(repo: Path, commit: str, dest: Path) -> None:
        (dest / "debian").mkdir()
        (dest / "debian" / "changelog").write_bytes(changelog * 2)

    def fetch(url: str, name: str, *args: object) -> Path:
        raise Fetched(name)

    monkeypatch.setattr(repository, "local_repository", lambda *args, **kwargs: tmp_path)
    monkeypatch.setattr(prepared_tree, "_export_debian", export)
    monkeypatch.setattr(download, "fetch", fetch)
    config = Config(state_dir=str(tmp_path / "state"))
    with pytest.raises(Fetched, match=r"^linux_6\.1\.176\.orig\.tar\.xz$"):
        prepared_tree.prepare(config, "src", "c" * 40, io.BytesIO(), sandbox.Spec(etc=""))
