"""Host-side facts for building each Debian architecture: one TOML file per arch.

The files hold what a build host needs to know (qemu-user target, cross prefix and
packages, the archive for an emulated chroot). What to build for an arch (its
flavours and kernel config) stays in the package's own ``debian/config``.

The schema below is the one declaration of an arch file; each load checks a file
against it (msgspec, ``strict``: a string where a list belongs is refused, never split
into letters).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import msgspec

from kbo import datafile
from kbo.errors import UserError
from kbo.text import NAME


def _s(description: str, **constraints: Any) -> msgspec.Meta:
    return msgspec.Meta(description=description, **constraints)


class ChrootSource(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    mirror: Annotated[str, _s("the archive mmdebstrap reads", pattern="^(https?|file)://")]
    suite: Annotated[str, _s("the suite the chroot follows", min_length=1)]
    keyring: Annotated[str, _s("the keyring that signs the archive", min_length=1)]


class ArchInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str  # not a key: the file's name
    cross_prefix: Annotated[
        str, _s("the GNU type and a dash: alpha-linux-gnu-", pattern=r"^[a-z0-9_]+(-[a-z0-9_]+)+-$")
    ]
    cross_packages: Annotated[
        tuple[Annotated[str, msgspec.Meta(pattern=f"^{NAME}$")], ...],
        _s("what to apt-get install for the cross toolchain"),
    ] = ()
    qemu_user: Annotated[
        Annotated[str, msgspec.Meta(pattern="^[a-z0-9_]+$")] | None,
        _s("qemu-user's name for the arch (qemu-<it>-static)"),
    ] = None
    qemu_cpu: Annotated[
        Annotated[str, msgspec.Meta(min_length=1)] | None, _s("the CPU qemu-user emulates")
    ] = None
    chroot: Annotated[
        ChrootSource | None, _s("the archive of an emulated chroot (none: no qemu executor)")
    ] = None

    @property
    def cross_gcc(self) -> str:
        return f"{self.cross_prefix}gcc"

    @property
    def qemu_binary(self) -> str | None:
        return f"qemu-{self.qemu_user}-static" if self.qemu_user else None


def supported() -> list[str]:
    """Every arch kbo has host-side facts for: a listing of this package's files."""
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".toml")
    )


def load(name: str) -> ArchInfo:
    """Read ``<name>.toml``; an arch without a file is a user error."""
    if name not in supported():
        raise UserError(f"unknown architecture {name!r} (kbo knows: {' '.join(supported())})")
    return load_file(Path(str(resources.files(__name__) / f"{name}.toml")), f"arches/{name}.toml")


def load_file(path: Path, where: str | None = None) -> ArchInfo:
    """Read and check one arch file; errors name ``where`` (default: the path)."""
    where = where or str(path)
    return datafile.convert(datafile.read(path, where), ArchInfo, where, name=path.stem)


def load_all() -> list[ArchInfo]:
    return [load(name) for name in supported()]
