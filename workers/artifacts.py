"""What a build produced, checked: every .deb for the job's arch, and the packages the
recipe expects present. A build that "succeeds" without them has failed.

The build's files are copied through ``job_files`` (no symlink followed, regular files
only, a size limit) before anything reads them; python-debian then reads the worker's
own copy, never a path the build controls.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from debian.debfile import DebError, DebFile

from kbo.workers import job_files

SUFFIXES = (".deb", ".udeb", ".changes", ".buildinfo")
MAX_ARTIFACT = 4 << 30


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


def collect(build_dir: Path, store: Path) -> list[Artifact]:
    """Copy the build's packages and upload files to ``store`` and describe them."""
    found = []
    # Every name that looks like a package is opened, so a symlink, FIFO or device
    # under such a name fails the build, saying so, rather than passing unseen.
    for name in sorted(os.listdir(build_dir)):
        if not name.endswith(SUFFIXES):
            continue
        store.mkdir(parents=True, exist_ok=True)
        kept = store / name
        digest = hashlib.sha256()
        with (
            job_files.open_regular(build_dir, name, MAX_ARTIFACT) as source,
            kept.open("wb") as out,
        ):
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        package = architecture = None
        if kept.suffix in (".deb", ".udeb"):
            try:
                control = DebFile(str(kept)).debcontrol()
            except (DebError, OSError, KeyError, EOFError, ValueError) as e:
                raise ValueError(f"{name} is not a valid Debian package: {e}") from None
            package, architecture = control.get("Package"), control.get("Architecture")
        found.append(
            Artifact(
                name, str(kept), kept.stat().st_size, digest.hexdigest(), package, architecture
            )
        )
    return found


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
