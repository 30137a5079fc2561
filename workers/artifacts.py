"""What a build produced, checked: every .deb for the job's arch, and the packages the
recipe expects present. A build that "succeeds" without them has failed.

The build's files are copied through ``job_files`` (no symlink followed, regular files
only, a size limit) before anything reads them; python-debian then reads the worker's
own copy, never a path the build controls. Of a package only its control file is read,
and only so much of it: a 1 GiB package may decompress to terabytes. The copies together
are held to the job's disk limit: sparse files take no room in the job directory, but
their copies are whole.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import Deb822
from debian.debfile import DebError, DebFile

from kbo.errors import KboError
from kbo.text import in_units
from kbo.workers import job_files, worker_paths

SUFFIXES = (".deb", ".udeb", ".changes", ".buildinfo")
MAX_ARTIFACT = 4 << 30
# A control file is a few KiB; it must come within the control tarball's first MiBs.
MAX_CONTROL = 1 << 20
MAX_CONTROL_OFFSET = 16 << 20


class TooMuchOutput(KboError):
    """The build's packages, copied out, would pass the job's disk limit."""


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
    for name in sorted(os.listdir(build_dir)):
        if not name.endswith(SUFFIXES):
            continue
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
                raise ValueError(f"{name} is not a valid Debian package: {e}") from None
            package, architecture = control.get("Package"), control.get("Architecture")
        found.append(
            Artifact(
                name, str(kept), kept.stat().st_size, digest.hexdigest(), package, architecture
            )
        )
    return found


def _too_much(limit: int) -> TooMuchOutput:
    return TooMuchOutput(
        f"the build's packages come to more than {in_units(limit)} (job_disk_gb): none kept"
    )


def read_control(path: Path) -> Deb822:
    """The package's control file, read without decompressing more than its first MiBs.

    python-debian would decompress a zstd member whole, in memory, with ``unzstd`` on
    the host, and read the control file whatever its size: neither for build output.
    """
    deb = DebFile(str(path))
    member = next(n for n in deb.getnames() if n.startswith("control.tar"))
    if member.endswith(".zst"):
        raise DebError(f"{member}: kbo reads xz, gzip or uncompressed control members only")
    for info in deb.control.tgz():
        if info.offset > MAX_CONTROL_OFFSET:
            break
        if os.path.normpath(info.name) != "control":
            continue
        if not info.isfile() or info.size > MAX_CONTROL:
            raise DebError(
                f"its control file is not a regular file of at most {MAX_CONTROL >> 10} KiB"
            )
        data = deb.control.tgz().extractfile(info)
        assert data is not None  # a regular file
        return Deb822(data.read(MAX_CONTROL))
    raise DebError("no control file at the start of its control member")


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
