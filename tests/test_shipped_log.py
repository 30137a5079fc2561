"""What a worker's report carries of its log: always the bytes, never a path."""

from __future__ import annotations

import base64
import gzip
import os
from pathlib import Path

import pytest

from kbo.workers import build


def shipped_text(shipped: dict[str, object]) -> bytes:
    assert isinstance(shipped["log_gz"], str)
    return gzip.decompress(base64.b64decode(shipped["log_gz"]))


def test_a_log_travels_whole_as_bytes_and_never_as_a_path(tmp_path: Path) -> None:
    log = tmp_path / "7.log"
    log.write_bytes(b"== kbo stage build ==\nerror: boom\n")
    shipped = build._ship_log(log)
    assert set(shipped) == {"log_gz"}
    assert shipped_text(shipped) == b"== kbo stage build ==\nerror: boom\n"
    assert not log.exists() and (tmp_path / "7.log.gz").exists()  # the worker keeps it


def test_a_log_too_large_to_ship_travels_as_its_last_part_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "MAX_SHIPPED_LOG", 64 << 10)
    monkeypatch.setattr(build, "SHIPPED_TAIL", 48 << 10, raising=False)
    noise = os.urandom(200 << 10)  # incompressible: its gzip is over the limit
    log = tmp_path / "7.log"
    log.write_bytes(noise + b"\nerror: the last line\n")
    shipped = build._ship_log(log)
    assert set(shipped) == {"log_gz"}
    text = shipped_text(shipped)
    first, _, rest = text.partition(b"\n")
    assert first.startswith(b"kbo: log cut: its last 49152 of 204822 bytes follow")
    assert rest == (noise + b"\nerror: the last line\n")[-(48 << 10) :]
    assert len(base64.b64decode(str(shipped["log_gz"]))) <= 64 << 10
    with gzip.open(tmp_path / "7.log.gz") as whole:  # the worker keeps the whole log
        assert whole.read().endswith(b"error: the last line\n")
