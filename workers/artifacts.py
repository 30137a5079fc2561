"""What a build produced, checked: every .deb for the job's arch, and the packages the
recipe expects present. A build that "succeeds" without them has failed.

The build's files are copied through ``job_files`` (no symlink followed, regular files
only, a size limit) before anything reads them; kbo then reads the worker's own copy,
never a path the build controls. Of a package only its control file is read, and only
so much of it: a 1 GiB package may decompress to terabytes. Its ar headers are checked
by kbo, not python-debian, which trusts them. The copies together are held to the job's
disk limit: sparse files take no room in the job directory, but their copies are whole.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import lzma
import os
import re
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from debian.deb822 import Deb822
from debian.debfile import DebError

from kbo.errors import UserError
from kbo.text import NAME, in_units
from kbo.workers import job_files, worker_paths

SUFFIXES = (".deb", ".udeb", ".changes", ".buildinfo")
MAX_ARTIFACT = 4 << 30
# A control file is a few KiB; it must come within the control tarball's first MiBs.
MAX_CONTROL = 1 << 20
MAX_CONTROL_OFFSET = 16 << 20
# No more of a control tarball is decompressed: its control file comes before this.
MAX_CONTROL_TAR = 17 << 20
AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60
CONTROL_MEMBERS = ("control.tar", "control.tar.gz", "control.tar.xz")
# The report carries every file collected, with its package's name and arch, and a
# broker message has a size limit (64 MiB in embedded mode): 100,000 empty ".changes"
# files made a report of 66 MiB, dropped, and the result was lost. A kernel build
# leaves tens of files; a package's name and arch are short words.
MAX_ARTIFACTS = 1000
MAX_FIELD = 128
_WORD = re.compile(f"{NAME}")


class TooMuchOutput(UserError):
    """The build's packages, copied out, would pass the job's disk limit."""


class BadPackage(UserError):
    """A package the build made cannot be read as one."""


@dataclass(frozen=True)
class Artifact:
    name: str
    path: str
    size: int
    sha256: str
    package: str | None = None
    architecture: str | None = None

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def collect(build_dir: Path, store: Path, limit: int) -> list[Artifact]:
    """Copy the build's packages and upload files to ``store`` and describe them; at most
    ``limit`` bytes in all (``job_disk_gb``), else none are kept."""
    try:
        return _collect(build_dir, store, limit)
    except TooMuchOutput:
        worker_paths.remove_tree(store)
        raise


def _collect(build_dir: Path, store: Path, limit: int) -> list[Artifact]:
    found = []
    copied = 0
    # Every name that looks like a package is opened, so a symlink, FIFO or device
    # under such a name fails the build, saying so, rather than passing unseen.
    names = sorted(name for name in os.listdir(build_dir) if name.endswith(SUFFIXES))
    if len(names) > MAX_ARTIFACTS:
        raise TooMuchOutput(
            f"the build left {len(names)} packages and upload files, more than "
            f"{MAX_ARTIFACTS}: none kept"
        )
    for name in names:
        store.mkdir(parents=True, exist_ok=True)
        kept = store / name
        digest = hashlib.sha256()
        with job_files.open_regular(build_dir, name, MAX_ARTIFACT) as source:
            # Checked before copying, and again as it goes (in case the file grew).
            if copied + os.fstat(source.fileno()).st_size > limit:
                raise _too_much(limit)
            with kept.open("wb") as out:
                while chunk := source.read(1 << 20):
                    copied += len(chunk)
                    if copied > limit:
                        raise _too_much(limit)
                    digest.update(chunk)
                    out.write(chunk)
        package = architecture = None
        if kept.suffix in (".deb", ".udeb"):
            try:
                control = read_control(kept)
            except (DebError, OSError, KeyError, EOFError, ValueError, tarfile.TarError) as e:
                raise BadPackage(f"{name} is not a valid Debian package: {e}") from None
            package, architecture = (
                _word(control, "Package", name),
                _word(control, "Architecture", name),
            )
        found.append(
            Artifact(
                name, str(kept), kept.stat().st_size, digest.hexdigest(), package, architecture
            )
        )
    return found


def _word(control: Deb822, field: str, name: str) -> str:
    """The package's ``field``, which must be a short Debian name: the report carries it."""
    value = control.get(field)
    if isinstance(value, str) and len(value) <= MAX_FIELD and _WORD.fullmatch(value):
        return value
    shown = "missing" if value is None else repr(value[:40]) + ("…" if len(value) > 40 else "")
    raise BadPackage(f"{name} is not a valid Debian package: its {field} is {shown}")


def _too_much(limit: int) -> TooMuchOutput:
    return TooMuchOutput(
        f"the build's packages come to more than {in_units(limit)} (job_disk_gb): none kept"
    )


def read_control(path: Path) -> Deb822:
    """The package's control file, its ar headers checked first and its control tarball
    decompressed no further than ``MAX_CONTROL_TAR``.

    python-debian trusts the ar headers (a size of -60 sends its reader back to the
    same header, for ever), decompresses a zstd member whole with ``unzstd`` on the
    host, and seeks through its control tarball as far as a member's size says (xz
    streams of zeros, concatenated, never end): none of that for build output.
    """
    with path.open("rb") as f:
        member, size = _control_member(f, os.fstat(f.fileno()).st_size)
        with _decompressed(member, _Bounded(f.read, size, None)) as stream:
            tarball = _Bounded(
                stream.read,
                MAX_CONTROL_TAR,
                f"its {member} decompresses to more than {MAX_CONTROL_TAR >> 20} MiB",
            )
            try:
                return _control_file(tarball)
            except (lzma.LZMAError, zlib.error, EOFError, OSError) as e:
                raise DebError(f"its {member} cannot be decompressed: {e}") from None


def _decompressed(member: str, raw: _Bounded) -> io.BufferedIOBase:
    if member.endswith(".xz"):
        return lzma.LZMAFile(io.BufferedReader(raw))
    if member.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return io.BufferedReader(raw)


def _control_member(f: BinaryIO, file_size: int) -> tuple[str, int]:
    """Check the ar archive up to its control member, and leave ``f`` at that member's
    data: the magic, then ``debian-binary`` (format 2.x), then ``control.tar*``, each
    header of 60 bytes with a decimal size inside the file and its terminator (a
    backquote, a newline)."""
    if f.read(len(AR_MAGIC)) != AR_MAGIC:
        raise DebError("it does not start with the ar magic !<arch>")
    for position in ("first", "second"):
        header = f.read(AR_HEADER)
        if len(header) < AR_HEADER:
            raise DebError("its ar archive ends before its control member")
        # GNU ar ends a name with "/", dpkg-deb does not.
        name = header[:16].decode("ascii", "replace").rstrip(" ").removesuffix("/")
        if header[58:60] != b"`\n":
            raise DebError(f"its ar member {name!r} has no header terminator")
        size_field = header[48:58].rstrip(b" ")
        if not size_field.isdigit():
            raise DebError(f"its ar member {name!r} has size {size_field!r}, not a decimal number")
        size = int(size_field)
        if f.tell() + size > file_size:
            raise DebError(f"its ar member {name!r} goes past the end of the file")
        if position == "first":
            if name != "debian-binary":
                raise DebError(
                    f"its first ar member is {name!r}: a package has 'debian-binary' first"
                )
            version = f.read(min(size, 16))
            if size > 16 or not version.startswith(b"2."):
                shown = version.decode("ascii", "replace").strip()
                raise DebError(f"it is of format {shown!r}, not 2.x")
            f.seek(size % 2, os.SEEK_CUR)  # members start at even offsets
        elif name.endswith(".zst"):
            raise DebError(f"{name}: kbo reads xz, gzip or uncompressed control members only")
        elif name not in CONTROL_MEMBERS:
            raise DebError(
                f"its second ar member is {name!r}, not one of {', '.join(CONTROL_MEMBERS)}"
            )
        elif size > MAX_CONTROL_TAR:
            raise DebError(f"its {name} is larger than {MAX_CONTROL_TAR >> 20} MiB")
        else:
            return name, size
    raise AssertionError("unreachable")


def _control_file(tarball: _Bounded) -> Deb822:
    """The control file, from the first members of a tarball read as a stream."""
    with tarfile.open(fileobj=tarball, mode="r|") as tar:
        for info in tar:
            if info.offset > MAX_CONTROL_OFFSET:
                break
            if os.path.normpath(info.name) != "control":
                continue
            if not info.isfile() or info.size > MAX_CONTROL:
                raise DebError(
                    f"its control file is not a regular file of at most {MAX_CONTROL >> 10} KiB"
                )
            data = tar.extractfile(info)
            assert data is not None  # a regular file
            return Deb822(data.read(MAX_CONTROL))
    raise DebError("no control file at the start of its control member")


class _Bounded(io.RawIOBase):
    """At most ``limit`` bytes of a stream (its ``read``): then the end of the file
    (``error`` None), or a DebError saying ``error``."""

    def __init__(self, read: Callable[[int], bytes], limit: int, error: str | None) -> None:
        self.read_stream, self.left, self.error = read, limit, error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        if self.left <= 0:
            if self.error is None or not self.read_stream(1):
                return 0
            raise DebError(self.error)
        data = self.read_stream(min(want, self.left))
        self.left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def problems(artifacts: list[Artifact], arch: str, expected: list[str]) -> list[str]:
    """Why these artifacts do not make a successful build of ``arch``; empty when they do."""
    found = []
    for artifact in artifacts:
        if artifact.architecture not in (None, arch, "all"):
            found.append(f"{artifact.name} is for {artifact.architecture}, not {arch}")
    packages = [a.package for a in artifacts if a.package]
    for pattern in expected:
        if not fnmatch.filter(packages, pattern):
            found.append(f"no package matching {pattern} was built")
    return found
