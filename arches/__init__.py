"""Host-side facts for building each Debian architecture: one TOML file per arch.

The files hold what a build host needs to know (qemu-user target, cross prefix and
packages, the archive for an emulated chroot). What to build for an arch (its
flavours and kernel config) stays in the package's own ``debian/config``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from kbo.errors import UserError


@dataclass(frozen=True)
class ChrootSource:
    mirror: str
    suite: str
    keyring: str


@dataclass(frozen=True)
class ArchInfo:
    name: str
    cross_prefix: str
    cross_packages: tuple[str, ...]
    qemu_user: str | None = None
    qemu_cpu: str | None = None
    chroot: ChrootSource | None = None

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
    path = resources.files(__name__) / f"{name}.toml"
    where = f"arches/{name}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(str(e), where) from None
    try:
        chroot = data.get("chroot")
        return ArchInfo(
            name=name,
            cross_prefix=_str(data, "cross_prefix"),
            cross_packages=tuple(data.get("cross_packages", ())),
            qemu_user=data.get("qemu_user"),
            qemu_cpu=data.get("qemu_cpu"),
            chroot=ChrootSource(**chroot) if chroot else None,
        )
    except (KeyError, TypeError) as e:
        raise UserError(f"bad or missing field: {e}", where) from None


def load_all() -> list[ArchInfo]:
    return [load(name) for name in supported()]


def _str(data: dict[str, object], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value
