"""Read a ``.dsc`` and unpack only the ``debian/`` files kbo reads from its debian tarball."""

from __future__ import annotations

import hashlib
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import Dsc

from kbo.errors import UserError
from kbo.packaging import safe_tar

# A file named in a .dsc must be a plain name in the .dsc's own directory.
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~_-]*")
_DEBIAN_TARBALL = re.compile(r".*\.debian\.tar\.(xz|gz|bz2)")


@dataclass(frozen=True)
class DscFile:
    name: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class DscInfo:
    path: Path
    source: str
    version: str
    files: tuple[DscFile, ...]

    def file(self, pattern: re.Pattern[str]) -> DscFile | None:
        return next((f for f in self.files if pattern.fullmatch(f.name)), None)

    @property
    def debian_tarball(self) -> DscFile:
        found = self.file(_DEBIAN_TARBALL)
        if found is None:
            raise UserError(
                "lists no .debian.tar.* (format 1.0 .diff.gz is not supported)", str(self.path)
            )
        return found


def read_dsc(path: Path) -> DscInfo:
    """Parse and check a .dsc: required fields, safe file names, a complete signature."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(e.strerror or "cannot read", where) from None
    _check_text(raw, where)
    if b"-----BEGIN PGP SIGNED MESSAGE-----" in raw and b"-----END PGP SIGNATURE-----" not in raw:
        raise UserError("truncated: the PGP signature does not end", where)
    dsc = Dsc(raw)
    for field in ("Format", "Source", "Version", "Files"):
        if not dsc.get(field):
            raise UserError(f"truncated or malformed: no {field} field", where)
    sizes: dict[str, int] = {}
    for entry in dsc["Files"]:
        name = entry.get("name", "")
        if not _SAFE_FILE_NAME.fullmatch(name) or ".." in name:
            raise UserError(f"refusing file name {name!r}: not a plain file name", where)
        try:
            sizes[name] = int(entry["size"])
        except (KeyError, ValueError):
            raise UserError(f"bad size for {name!r}", where) from None
    sha256: dict[str, str] = {}
    for entry in dsc.get("Checksums-Sha256", []):
        name, digest = entry.get("name"), entry.get("sha256", "")
        if not name or not re.fullmatch(r"[0-9a-f]{64}", digest or ""):
            raise UserError("malformed Checksums-Sha256 entry: want SHA256 SIZE NAME", where)
        sha256[name] = digest
    files = tuple(DscFile(name, size, sha256.get(name)) for name, size in sizes.items())
    return DscInfo(path, dsc["Source"], dsc["Version"], files)


def _check_text(raw: bytes, where: str) -> None:
    """A .dsc is UTF-8 text (Debian policy 5.1); anything else is refused here, in words."""
    if b"\0" in raw:
        raise UserError("not a text file: it holds NUL bytes (is it a .dsc?)", where)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"not a text file: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})", where
        ) from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: DscFile, where: str) -> None:
    """Check size and SHA-256 of a file against what its .dsc says."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UserError(f"{expected.name} is missing beside the .dsc", where) from None
    if size != expected.size:
        raise UserError(f"{expected.name}: size {size} does not match {expected.size}", where)
    if expected.sha256 is not None and sha256_of(path) != expected.sha256:
        raise UserError(f"{expected.name}: SHA-256 does not match", where)


def unpack_debian(
    tarball: Path, dest: Path, want: Callable[[str], bool], *, links: bool = False
) -> Path:
    """Extract the regular files whose path (below ``debian/``) ``want`` accepts.

    Every member's name is checked: an absolute path or a ``..`` anywhere in the archive
    refuses the whole tarball, naming the member. Devices are skipped, and so are links
    unless ``links``; then only links that stay inside ``debian/`` through any chain of
    links (the kernel's ``debian/bin/debian_linux`` is one). Returns ``dest/debian``.
    """
    try:
        with tarfile.open(tarball) as tar:
            return safe_tar.extract(
                tar, dest, str(tarball), within="debian", want=want, links=links, special="skip"
            )
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UserError(f"cannot unpack: {e}", str(tarball)) from None
