"""Downloads resume where they stopped, are checked against the .dsc, and are cached."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from kbo.errors import UserError
from kbo.packaging.download import fetch
from kbo.packaging.dsc import DscFile

DATA = bytes(range(256)) * 4096  # 1 MiB


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves DATA, honouring a Range header; records what was asked."""

    ranges: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.ranges.append(self.headers.get("Range"))
        start = (
            int(self.headers["Range"].split("=")[1].rstrip("-")) if "Range" in self.headers else 0
        )
        body = DATA[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    RangeHandler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/linux_1.0.orig.tar.xz"
    httpd.shutdown()


def test_an_interrupted_download_resumes_and_is_verified(server: str, tmp_path: Path) -> None:
    expected = DscFile("linux_1.0.orig.tar.xz", len(DATA), hashlib.sha256(DATA).hexdigest())
    partial = tmp_path / "partial" / expected.name
    partial.parent.mkdir(parents=True)
    partial.write_bytes(DATA[:300_000])  # what an interrupted download left
    progress: list[str] = []
    path = fetch(server, expected.name, tmp_path, expected, progress.append)
    assert path == tmp_path / expected.sha256 / expected.name
    assert path.read_bytes() == DATA
    assert RangeHandler.ranges == ["bytes=300000-"]
    assert progress[0].startswith("resuming linux_1.0.orig.tar.xz at 300000")
    assert any("100%" in line for line in progress)
    assert fetch(server, expected.name, tmp_path, expected) == path  # cached: no request
    assert len(RangeHandler.ranges) == 1


def test_a_checksum_that_does_not_match_is_refused(server: str, tmp_path: Path) -> None:
    wrong = DscFile("linux_1.0.orig.tar.xz", len(DATA), hashlib.sha256(b"other").hexdigest())
    with pytest.raises(UserError, match=r"SHA-256 \w+ does not match the \.dsc"):
        fetch(server, wrong.name, tmp_path, wrong)
    assert not list(tmp_path.glob("*/linux_1.0.orig.tar.xz"))
