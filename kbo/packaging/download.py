"""Download a file once per host: resumable, with progress, checked against its .dsc.

Cached under ``<state_dir>/cache/downloads/<sha256>/<name>``, keyed by name and checksum,
and checked against that checksum again every time it is used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import requests

from kbo.errors import InfraError, UserError
from kbo.packaging.dsc import DscFile, DscInfo, sha256_of, verify

CHUNK = 1 << 20


def source_file(dsc_path: Path, info: DscInfo, wanted: DscFile, mirror: str, cache: Path) -> Path:
    """A file the .dsc names: the one beside it, else from the mirror's pool (cached).
    Either way it is checked against the .dsc's size and checksum."""
    beside = dsc_path.parent / wanted.name
    if beside.is_file():
        verify(beside, wanted, str(dsc_path))
        return beside
    return fetch(pool_url(mirror, info.source, wanted.name), wanted.name, cache, wanted)


def pool_url(mirror: str, source: str, name: str) -> str:
    """Where a file of a source package lies in a Debian mirror's pool."""
    prefix = source[:4] if source.startswith("lib") else source[0]
    return f"{mirror.rstrip('/')}/pool/main/{prefix}/{source}/{name}"


def fetch(
    url: str,
    name: str,
    cache: Path,
    expected: DscFile | None,
    progress: Callable[[str], None] = lambda _: None,
) -> Path:
    """The cached file for ``url``; downloaded (or resumed) first when missing."""
    if expected is not None and expected.sha256:
        cached = cache / expected.sha256 / name
        if cached.is_file():
            # Checked at every use: a damaged or altered cache is fetched again.
            if sha256_of(cached) == expected.sha256:
                return cached
            progress(f"the cached {name} does not match its SHA-256: fetching it again")
            cached.unlink()
    partial = cache / "partial" / name
    partial.parent.mkdir(parents=True, exist_ok=True)
    _download(url, partial, expected, progress)
    digest = sha256_of(partial)
    if expected is not None:
        if partial.stat().st_size != expected.size:
            partial.unlink()
            raise UserError(
                f"{name}: size {partial.stat().st_size if partial.exists() else '?'}"
                f" does not match the .dsc's {expected.size}",
                url,
            )
        if expected.sha256 and digest != expected.sha256:
            partial.unlink()
            raise UserError(f"{name}: SHA-256 {digest} does not match the .dsc", url)
    final = cache / digest / name
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(partial, final)
    return final


def _download(
    url: str, partial: Path, expected: DscFile | None, progress: Callable[[str], None]
) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    if expected is not None and have > expected.size:
        partial.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=(30, 300)) as response:
            if response.status_code == 416 and expected is not None and have == expected.size:
                return  # already complete
            if response.status_code == 404:
                raise UserError("not found on the mirror", url)
            response.raise_for_status()
            if have and response.status_code != 206:
                have = 0  # the server ignored the range: start again
            total = have + int(response.headers.get("Content-Length", 0))
            if have:
                progress(f"resuming {partial.name} at {have} of {total} bytes")
            _write(response, partial, have, total, progress, expected)
    except requests.RequestException as e:
        raise InfraError(f"download failed: {e}", url) from None


def _write(
    response: requests.Response,
    partial: Path,
    have: int,
    total: int,
    progress: Callable[[str], None],
    expected: DscFile | None,
) -> None:
    """Append the body to ``partial``; never past the size the .dsc (or the signed
    index) gives: a mirror sending without end would fill the disk before the size was
    compared."""
    done, step = have, max(total // 10, 1)
    next_report = (done // step + 1) * step
    with partial.open("ab" if have else "wb") as out:
        for block in response.iter_content(CHUNK):
            if expected is not None and done + len(block) > expected.size:
                out.close()
                partial.unlink()
                raise UserError(
                    f"{partial.name}: the mirror sent more than the {expected.size} bytes "
                    "it should be",
                    response.url,
                )
            out.write(block)
            done += len(block)
            if done >= next_report:
                progress(f"{partial.name}: {done * 100 // max(total, 1)}% of {total} bytes")
                next_report += step
        out.flush()
        os.fsync(out.fileno())
