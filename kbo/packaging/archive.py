"""A source package's ``.dsc`` from a Debian archive, trusted the way apt trusts it.

``linux/bookworm`` names the newest ``linux`` in the suite's ``main``. The chain is the
archive's own: ``dists/SUITE/InRelease`` must carry a good signature from a key in
Debian's archive keyring (``gpgv``), its signed ``SHA256`` list vouches for
``main/source/Sources.xz``, and that index's ``Checksums-Sha256`` vouch for the
``.dsc``. The ``.dsc`` then vouches for its tarballs (``import_dsc``, the workers).
"""

from __future__ import annotations

import lzma
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3.exceptions
from debian.deb822 import Release, Sources
from debian.debian_support import Version

from kbo.errors import InfraError, UserError
from kbo.packaging import download
from kbo.packaging.dsc import DscFile
from kbo.text import NAME

SOURCES_INDEX = "main/source/Sources.xz"
# The signed Release of a whole suite is well under a megabyte.
MAX_RELEASE = 4 << 20
# Sources.xz of main is about 10 MB; what it unpacks to is read as a stream.
MAX_SOURCES_XZ = 64 << 20
TIMEOUT = 60
ARCHIVE_SOURCE = re.compile(rf"(?P<package>{NAME})/(?P<suite>[a-z][a-z0-9.-]*)")


@dataclass(frozen=True)
class ArchiveSource:
    """A source package the archive names: the newest of ``package`` in ``suite``."""

    package: str
    suite: str

    @classmethod
    def parse(cls, text: str) -> ArchiveSource | None:
        """``linux/bookworm``, or None for anything else (a path to a ``.dsc``)."""
        found = None if text.endswith(".dsc") else ARCHIVE_SOURCE.fullmatch(text)
        return cls(found["package"], found["suite"]) if found else None

    def __str__(self) -> str:
        return f"{self.package}/{self.suite}"


def fetch_dsc(wanted: ArchiveSource, mirror: str, cache: Path, keyring: Path) -> Path:
    """Download and verify the ``.dsc`` of ``wanted``; return its cached path."""
    base = mirror.rstrip("/")
    release = _signed_release(f"{base}/dists/{wanted.suite}/InRelease", keyring)
    if wanted.suite not in (release.get("Suite"), release.get("Codename")):
        raise UserError(
            f"the archive's signed Release is for {release.get('Codename')}, not {wanted.suite}",
            f"{base}/dists/{wanted.suite}/InRelease",
        )
    index = _release_entry(release, SOURCES_INDEX, base, wanted.suite)
    sources = download.fetch(
        f"{base}/dists/{wanted.suite}/{SOURCES_INDEX}", "Sources.xz", cache, index
    )
    directory, dsc = _newest_dsc(sources, wanted)
    return download.fetch(f"{base}/{directory}/{dsc.name}", dsc.name, cache, dsc)


def _signed_release(url: str, keyring: Path) -> Release:
    """The part of ``InRelease`` a key of ``keyring`` signed, and nothing else."""
    if not keyring.is_file():
        raise InfraError(
            "is missing: install debian-archive-keyring to check the archive", str(keyring)
        )
    content = _get_small(url, MAX_RELEASE)
    with tempfile.NamedTemporaryFile(prefix="kbo-InRelease-") as signed:
        signed.write(content)
        signed.flush()
        checked = subprocess.run(
            ["gpgv", "--quiet", "--keyring", str(keyring), "--output", "-", signed.name],
            capture_output=True,
            check=False,
        )
    if checked.returncode != 0:
        reason = checked.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(
            f"its signature does not check against {keyring}: "
            f"{reason[-1] if reason else f'gpgv exited with {checked.returncode}'}",
            url,
        )
    return Release(checked.stdout)


def _get_small(url: str, limit: int) -> bytes:
    """The body at ``url``, read no further than ``limit`` and for no longer than
    ``TIMEOUT`` in all: nothing is trusted before its signature is checked, so a mirror
    cannot make kbo hold more, nor wait for ever on a byte sent every few seconds (the
    timeout of each read alone never ran out)."""
    deadline = time.monotonic() + TIMEOUT
    body = bytearray()
    try:
        with requests.get(url, timeout=TIMEOUT, stream=True) as response:
            if response.status_code != 200:
                raise InfraError(f"the Debian archive answered HTTP {response.status_code}", url)
            while len(body) <= limit:
                if time.monotonic() > deadline:
                    raise InfraError(f"the Debian archive sent it too slowly ({TIMEOUT} s)", url)
                # read1: what has come, not a wait for the whole amount.
                chunk = response.raw.read1(min(1 << 16, limit + 1 - len(body)), True)
                if not chunk:
                    break
                body += chunk
    except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
        raise InfraError(f"cannot reach the Debian archive: {type(e).__name__}", url) from None
    if len(body) > limit:
        raise UserError(f"larger than {limit >> 20} MiB: not a Release file", url)
    return bytes(body)


def _release_entry(release: Release, name: str, base: str, suite: str) -> DscFile:
    for entry in release.get("SHA256", []):
        if entry["name"] == name:
            size = int(entry["size"])
            if size > MAX_SOURCES_XZ:
                raise UserError(f"{name} is {size} bytes, more than kbo reads", base)
            return DscFile(name="Sources.xz", size=size, sha256=entry["sha256"])
    raise UserError(f"the signed Release of {suite} lists no {name}", base)


def _newest_dsc(sources: Path, wanted: ArchiveSource) -> tuple[str, DscFile]:
    """The pool directory and ``.dsc`` of the newest version of the package."""
    best: tuple[Version, str, DscFile] | None = None
    for paragraph in _paragraphs(sources):
        if paragraph.get("Package") != wanted.package:
            continue
        version = Version(paragraph["Version"])
        if best is not None and version <= best[0]:
            continue
        directory = paragraph.get("Directory", "")
        if not re.fullmatch(r"pool/[a-z0-9/+._-]+", directory) or ".." in directory:
            raise UserError(f"Sources names an unusable Directory {directory!r}", str(wanted))
        dsc = next(
            (
                DscFile(name=f["name"], size=int(f["size"]), sha256=f["sha256"])
                for f in paragraph.get("Checksums-Sha256", [])
                if f["name"].endswith(".dsc") and re.fullmatch(r"[A-Za-z0-9.+~_-]+", f["name"])
            ),
            None,
        )
        if dsc is not None:
            best = (version, directory, dsc)
    if best is None:
        raise UserError(f"the archive has no source package {wanted.package}", str(wanted))
    return best[1], best[2]


def _paragraphs(sources: Path) -> Iterator[Sources]:
    try:
        with lzma.open(sources, "rt", encoding="utf-8", errors="replace") as text:
            yield from Sources.iter_paragraphs(text, use_apt_pkg=False)
    except (lzma.LZMAError, EOFError) as e:
        raise UserError(f"cannot read Sources.xz: {e}", str(sources)) from None
