"""Probe dpkg, once, for what it knows of architectures.

dpkg's own ``Dpkg::Arch`` answers for every arch in one process, where
``dpkg-architecture -a`` would take one process per arch.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterable

from kbo.errors import InfraError

_GNU_TYPES = (
    "use Dpkg::Arch qw(debarch_to_gnutriplet);"
    ' print $_, "\\t", (debarch_to_gnutriplet($_) // ""), "\\n" for @ARGV'
)


def gnu_types(arches: Iterable[str]) -> dict[str, str | None]:
    """GNU type of each arch (``alpha`` -> ``alpha-linux-gnu``); None for an arch dpkg lacks."""
    return dict(_gnu_types(tuple(sorted(set(arches)))))


@functools.cache
def _gnu_types(arches: tuple[str, ...]) -> tuple[tuple[str, str | None], ...]:
    if not arches:
        return ()
    try:
        result = subprocess.run(
            ["perl", "-e", _GNU_TYPES, "--", *arches], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise InfraError("perl is not installed (apt-get install dpkg-dev)") from None
    if result.returncode != 0:
        raise InfraError(
            f"cannot read dpkg's arch tables (apt-get install dpkg-dev): "
            f"{result.stderr.strip().splitlines()[0] if result.stderr else ''}"
        )
    pairs = (line.split("\t") for line in result.stdout.splitlines())
    return tuple((arch, gnu or None) for arch, gnu in pairs)


@functools.cache
def host_arch() -> str:
    try:
        return subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise InfraError(f"cannot ask dpkg for the host architecture: {e}") from None
