"""The package's Build-Depends, checked the Debian way: ``dpkg-checkbuilddeps`` for the
job's arch and build profiles, against the packages installed where the build runs (the
host, or a chroot through ``--admindir``). Versions, arch lists, profiles, Provides and
Multi-Arch are dpkg's to judge, as they are for ``dpkg-buildpackage``.

One leniency, for cross builds only: a relation that names a tool of the build machine
without ``:native`` (linux 6.1 asks hppa builds for ``binutils-hppa64-linux-gnu``, which
is not ``Multi-Arch: foreign``) is unmet for dpkg, which wants the host arch's package.
kbo accepts it when a package of that name is installed for the build machine, and the
log says which relations it accepted so: a packaging bug worth reporting, not a reason
to stop the build.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from debian.deb822 import Deb822

from kbo.errors import InfraError, UserError

# One relation of dpkg's list: a name with an optional version, alternatives joined by "|".
_ONE = r"[^\s|()]+(?: \([^)]*\))?"
_RELATION = re.compile(rf"{_ONE}(?: \| {_ONE})*")
_UNMET = "Unmet build dependencies: "
# Rules-Requires-Root: "no", "binary-targets", or keywords such as "dpkg/target-subcommand".
_KEYWORD = r"[a-z0-9.-]+/[a-z0-9./-]+"
_REQUIRES_ROOT = re.compile(rf"^(no|binary-targets|{_KEYWORD}( {_KEYWORD})*)$")
_CONFLICTS = "Build conflicts: "


@dataclass(frozen=True)
class Checked:
    """What the build lacks (``missing``: relations and conflicts, as dpkg wrote them),
    and the relations accepted through the build machine's packages (cross builds)."""

    missing: list[str] = field(default_factory=list)
    met_natively: list[str] = field(default_factory=list)


def check(
    control: str, arch: str, profiles: Iterable[str], *, root: Path | None, cross: bool
) -> Checked:
    """Check ``control`` (the text of debian/control) for a build for ``arch``; ``root``
    is the chroot the build runs in, if any."""
    with tempfile.NamedTemporaryFile("w", prefix="kbo-control-", suffix=".txt") as copy:
        copy.write(control)  # dpkg reads the worker's copy, never the build's file
        copy.flush()
        unmet, conflicts = _dpkg_check(Path(copy.name), arch, sorted(set(profiles)), root)
    accepted = []
    if cross and unmet:
        native = installed_names(None)
        accepted = [r for r in unmet if any(_name(alt) in native for alt in r.split(" | "))]
        unmet = [r for r in unmet if r not in accepted]
    return Checked(unmet + [f"conflicts: {c}" for c in conflicts], accepted)


def _dpkg_check(
    control: Path, arch: str, profiles: list[str], root: Path | None
) -> tuple[list[str], list[str]]:
    argv = ["dpkg-checkbuilddeps", "-B", "-a", arch]
    if profiles:
        argv += ["-P", ",".join(profiles)]
    if root is not None:
        argv += ["--admindir", str(root / "var/lib/dpkg")]
    try:
        result = subprocess.run(
            [*argv, str(control)],
            capture_output=True,
            text=True,
            errors="replace",
            env=os.environ | {"LC_ALL": "C.UTF-8"},
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InfraError(f"dpkg-checkbuilddeps could not run: {e}") from None
    if result.returncode == 0:
        return [], []
    unmet = _listed(result.stderr, _UNMET)
    conflicts = _listed(result.stderr, _CONFLICTS)
    if not unmet and not conflicts:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise InfraError(f"dpkg-checkbuilddeps failed: {last[:300]}")
    return unmet, conflicts


def _listed(stderr: str, label: str) -> list[str]:
    for line in stderr.splitlines():
        if label in line:
            return _RELATION.findall(line.split(label, 1)[1])
    return []


def _name(alternative: str) -> str:
    """``gcc-12 (>= 12)`` and ``libssl-dev:native`` to their package names."""
    return alternative.split(" ", 1)[0].split(":", 1)[0]


def installed_names(root: Path | None = None) -> set[str]:
    """Names of the packages installed (on the host, or in the chroot ``root``)."""
    admindir = ["--admindir", str(root / "var/lib/dpkg")] if root else []
    result = subprocess.run(
        ["dpkg-query", *admindir, "-W", "-f", "${db:Status-Abbrev} ${Package}\\n"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in (0, 1):
        raise InfraError(f"dpkg-query failed: {result.stderr.strip()}")
    return {
        line.split()[1]
        for line in result.stdout.splitlines()
        if line.startswith("ii") and len(line.split()) == 2
    }


def rules_env(control: str) -> dict[str, str]:
    """What dpkg-buildpackage tells debian/rules about root, from the source's
    ``Rules-Requires-Root`` (policy's default is ``binary-targets``): recipes call the
    packaging's make targets directly, so kbo sets it as dpkg-buildpackage would. With
    ``no``, debhelper builds packages owned by root without root, as linux's do."""
    source = next(iter(Deb822.iter_paragraphs(control.splitlines())), None)
    value = "binary-targets" if source is None else source.get("Rules-Requires-Root", "")
    value = value.strip() or "binary-targets"
    if not _REQUIRES_ROOT.match(value):
        raise UserError(f"debian/control: Rules-Requires-Root {value[:80]!r} is not valid")
    return {"DEB_RULES_REQUIRES_ROOT": value}
