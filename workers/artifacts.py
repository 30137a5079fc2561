"""What a build produced, checked: every .deb for the job's arch, and the packages the
recipe expects present. A build that "succeeds" without them has failed."""

from __future__ import annotations

import fnmatch
import shutil
from dataclasses import dataclass
from pathlib import Path

from debian.debfile import DebError, DebFile

from kbo.packaging.dsc import sha256_of

SUFFIXES = (".deb", ".udeb", ".changes", ".buildinfo")


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
    for path in sorted(build_dir.iterdir()):
        if not path.is_file() or not path.name.endswith(SUFFIXES):
            continue
        store.mkdir(parents=True, exist_ok=True)
        kept = store / path.name
        shutil.copy2(path, kept)
        package = architecture = None
        if path.suffix in (".deb", ".udeb"):
            try:
                control = DebFile(str(path)).debcontrol()
            except (DebError, OSError, KeyError) as e:
                raise ValueError(f"{path.name} is not a valid Debian package: {e}") from None
            package, architecture = control.get("Package"), control.get("Architecture")
        found.append(
            Artifact(
                path.name, str(kept), kept.stat().st_size, sha256_of(kept), package, architecture
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
