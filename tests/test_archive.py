"""``kbo import-dsc PACKAGE/SUITE``: a source package taken from an archive only through
its signed chain (InRelease signature, Release's SHA256 of Sources.xz, Sources'
checksum of the .dsc), against an archive served on 127.0.0.1 and signed by a key
made for the test."""

from __future__ import annotations

import functools
import hashlib
import http.server
import lzma
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kbo.errors import InfraError, UserError
from kbo.packaging import archive, download
from kbo.packaging.dsc import DscFile
from tests.conftest import FIXTURES, KBO

HELLO = FIXTURES / "hello-2.10-3"


def gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback",
         "--passphrase", "", *args],
        input=data,
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two signing keys: the archive's (in the keyring kbo trusts) and a stranger's."""
    base = tmp_path_factory.mktemp("keys")
    made = {}
    for who in ("archive", "stranger"):
        home = base / who
        home.mkdir(mode=0o700)
        gpg(home, "--quick-gen-key", f"kbo test {who} <{who}@example.invalid>", "ed25519",
            "sign", "never")  # fmt: skip
        made[who] = home
        (base / f"{who}.gpg").write_bytes(gpg(home, "--export"))
        made[f"{who}.gpg"] = base / f"{who}.gpg"
    return made


def sources_paragraph(dsc: Path, version: str) -> str:
    data = dsc.read_bytes()
    return (
        f"Package: hello\nVersion: {version}\nDirectory: pool/main/h/hello\n"
        f"Checksums-Sha256:\n {hashlib.sha256(data).hexdigest()} {len(data)} {dsc.name}\n\n"
    )


def make_archive(root: Path, signer: Path) -> Path:
    """A one-suite archive (``testing``) holding hello 2.10-3, plus an older 2.10-2 entry
    listed first so that only the newest version is taken."""
    pool = root / "pool" / "main" / "h" / "hello"
    pool.mkdir(parents=True)
    for name in ("hello_2.10-3.dsc", "hello_2.10-3.debian.tar.xz"):
        shutil.copy(HELLO / name, pool / name)
    older = pool / "hello_2.10-2.dsc"
    older.write_text("an older upload nobody should read\n")
    index = root / "dists" / "testing" / "main" / "source" / "Sources.xz"
    index.parent.mkdir(parents=True)
    newest = pool / "hello_2.10-3.dsc"
    text = sources_paragraph(older, "2.10-2") + sources_paragraph(newest, "2.10-3")
    index.write_bytes(lzma.compress(text.encode()))
    sign_release(root, signer)
    return root


def sign_release(root: Path, signer: Path) -> None:
    index = root / "dists" / "testing" / "main" / "source" / "Sources.xz"
    data = index.read_bytes()
    release = (
        "Origin: Debian\nSuite: testing\nCodename: trixie\nSHA256:\n"
        f" {hashlib.sha256(data).hexdigest()} {len(data)} main/source/Sources.xz\n"
    )
    signed = gpg(signer, "--clearsign", "--output", "-", data=release.encode())
    (root / "dists" / "testing" / "InRelease").write_bytes(signed)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, and its URL."""
    root = tmp_path / "archive"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def import_from(
    url: str, keyring: Path, tmp_path: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "KBO_CONFIG": "/dev/null",
        "KBO_MIRROR": url,
        "KBO_ARCHIVE_KEYRING": str(keyring),
        "KBO_STATE_DIR": str(tmp_path / "state"),
    }
    return subprocess.run(
        [str(KBO), "import-dsc", "hello/testing", str(tmp_path / "repo"), *extra],
        capture_output=True,
        text=True,
        env=env,
    )


def test_the_newest_source_package_is_imported_through_the_signed_chain(
    served: tuple[Path, str], keys: dict[str, Path], tmp_path: Path
) -> None:
    root, url = served
    make_archive(root, keys["archive"])
    result = import_from(url, keys["archive.gpg"], tmp_path, "--keep-dsc", str(tmp_path / "dscs"))
    assert result.returncode == 0, result.stderr
    assert "hello/testing: hello_2.10-3.dsc from" in result.stdout
    assert result.stdout.endswith("(hello 2.10-3)\n")
    assert (tmp_path / "repo" / "debian" / "changelog").read_text().startswith("hello (2.10-3)")
    kept = tmp_path / "dscs" / "hello_2.10-3.dsc"
    assert kept.read_bytes() == (HELLO / "hello_2.10-3.dsc").read_bytes()


def test_a_release_signed_by_a_key_outside_the_keyring_is_refused(
    served: tuple[Path, str], keys: dict[str, Path], tmp_path: Path
) -> None:
    root, url = served
    make_archive(root, keys["stranger"])
    result = import_from(url, keys["archive.gpg"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "InRelease: its signature does not check against" in result.stderr
    assert not (tmp_path / "repo").exists()


def test_an_index_changed_after_signing_is_refused(
    served: tuple[Path, str], keys: dict[str, Path], tmp_path: Path
) -> None:
    root, url = served
    make_archive(root, keys["archive"])
    index = root / "dists" / "testing" / "main" / "source" / "Sources.xz"
    forged = sources_paragraph(root / "pool/main/h/hello/hello_2.10-2.dsc", "9.9-9")
    index.write_bytes(lzma.compress(forged.encode()))
    result = import_from(url, keys["archive.gpg"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Sources.xz: size" in result.stderr or "Sources.xz: SHA-256" in result.stderr
    assert not (tmp_path / "repo").exists()


def test_a_dsc_changed_in_the_pool_is_refused(
    served: tuple[Path, str], keys: dict[str, Path], tmp_path: Path
) -> None:
    root, url = served
    make_archive(root, keys["archive"])
    dsc = root / "pool/main/h/hello/hello_2.10-3.dsc"
    dsc.write_bytes(dsc.read_bytes().replace(b"hello", b"hellp"))
    result = import_from(url, keys["archive.gpg"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "hello_2.10-3.dsc: SHA-256" in result.stderr
    assert not (tmp_path / "repo").exists()


def test_an_unreachable_archive_is_one_line(keys: dict[str, Path], tmp_path: Path) -> None:
    result = import_from("http://127.0.0.1:9/debian", keys["archive.gpg"], tmp_path)
    assert result.returncode == 3
    assert result.stderr == (
        "kbo: http://127.0.0.1:9/debian/dists/testing/InRelease: "
        "cannot reach the Debian archive: ConnectionError\n"
    )


def test_an_endless_inrelease_is_refused_before_it_is_held(
    served: tuple[Path, str], keys: dict[str, Path], tmp_path: Path
) -> None:
    root, url = served
    make_archive(root, keys["archive"])
    (root / "dists" / "testing" / "InRelease").write_bytes(b"A" * (5 << 20))
    result = import_from(url, keys["archive.gpg"], tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"kbo: {url}/dists/testing/InRelease: larger than 4 MiB: not a Release file\n"
    )


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A mirror that drips one byte every 0.2 s, or floods (up to 256 MiB) without end."""

    sent = 0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(256 << 20))
        self.end_headers()
        drip = self.path.endswith("InRelease")
        block = b"A" if drip else b"\0" * (1 << 20)
        try:
            for _ in range(256):
                self.wfile.write(block)
                self.wfile.flush()
                type(self).sent += len(block)
                if drip:
                    time.sleep(0.2)
        except OSError:  # the client gave up: what this is for
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[str]:
    _Hostile.sent = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _in_thread(call: Callable[[], object], seconds: float) -> object:
    answer: list[object] = []

    def run() -> None:
        try:
            answer.append(call())
        except Exception as e:
            answer.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert answer, f"still reading after {seconds} s"
    return answer[0]


def test_an_inrelease_dripped_a_byte_at_a_time_ends_at_the_timeout(
    hostile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read got its byte within the read timeout, so no timeout ever ran out: 4 MiB
    at one byte every 0.2 s is ten days."""
    monkeypatch.setattr(archive, "TIMEOUT", 2)
    url = f"{hostile}/dists/testing/InRelease"
    error = _in_thread(lambda: archive._get_small(url, archive.MAX_RELEASE), 15)
    assert isinstance(error, InfraError), error
    assert "too slowly" in str(error)


def test_a_download_is_cut_at_the_size_its_checksum_is_for(hostile: str, tmp_path: Path) -> None:
    """An endless body was written whole, then found to be the wrong size: a hostile
    mirror (or anyone on its plain HTTP) filled the cache's disk."""
    expected = DscFile(name="x.dsc", size=1000, sha256="0" * 64)
    error = _in_thread(
        lambda: download.fetch(f"{hostile}/pool/x.dsc", "x.dsc", tmp_path, expected), 60
    )
    assert isinstance(error, UserError), error
    assert "sent more than the 1000 bytes" in str(error)
    assert _Hostile.sent < 32 << 20
    assert not list(tmp_path.rglob("x.dsc"))
