"""The package's Build-Depends, read with python-debian, against what the build will see.

Relations are evaluated for the job's arch and build profiles (arch lists, ``<!nodoc>``
restrictions); an alternative is met when a package of that name, or one that provides
it, is installed where the build runs: on the host, or in the chroot (``--admindir``).
Versions are not compared.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterable
from pathlib import Path

from debian.deb822 import Deb822, PkgRelation
from debian.debian_support import DpkgArchTable

from kbo.errors import InfraError

FIELDS = ("Build-Depends", "Build-Depends-Arch")


def installed_names(root: Path | None = None) -> set[str]:
    """Names of installed packages and of what they provide."""
    admindir = ["--admindir", str(root / "var/lib/dpkg")] if root else []
    result = subprocess.run(
        ["dpkg-query", *admindir, "-W", "-f", "${db:Status-Abbrev} ${Package} ${Provides}\\n"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in (0, 1):
        raise InfraError(f"dpkg-query failed: {result.stderr.strip()}")
    names: set[str] = set()
    for line in result.stdout.splitlines():
        status, _, rest = line.partition(" ")
        if not status.startswith("ii"):
            continue
        package, _, provides = rest.strip().partition(" ")
        names.add(package)
        names.update(p.split()[0] for p in provides.split(",") if p.strip())
    return names


def unmet(control: str, arch: str, profiles: Iterable[str], installed: set[str]) -> list[str]:
    """The Build-Depends groups (``a | b``) that nothing installed satisfies."""
    source = next(iter(Deb822.iter_paragraphs(control.splitlines())), None)
    if source is None:
        return []
    active = set(profiles)
    missing = []
    for field in FIELDS:
        if not source.get(field, "").strip():
            continue  # an absent field parses as one relation named ""
        for group in PkgRelation.parse_relations(source[field]):
            wanted = [alt for alt in group if _applies(alt, arch, active)]
            if wanted and not any(alt["name"] in installed for alt in wanted):
                missing.append(" | ".join(alt["name"] for alt in wanted))
    return missing


def _applies(alt: PkgRelation.ParsedRelation, arch: str, profiles: set[str]) -> bool:
    return bool(PkgRelation.holds_on_arch(alt, arch, _arch_table())) and bool(
        PkgRelation.holds_with_profiles(alt, profiles)
    )


@functools.cache
def _arch_table() -> DpkgArchTable:
    return DpkgArchTable.load_arch_table()
