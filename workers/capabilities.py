"""Which Debian arches this host can build, and how: native, cross or qemu.

Every check looks at the host as it is (installed compilers, qemu-user binaries,
registered binfmt_misc handlers), so a worker never claims an arch it would fail on.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kbo.arches import ArchInfo

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class ArchCapability:
    arch: str
    gnu_type: str | None
    executors: tuple[str, ...]
    missing: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "arch": self.arch,
            "gnu_type": self.gnu_type,
            "buildable": bool(self.executors),
            "executors": list(self.executors),
            "missing": list(self.missing),
        }


def binfmt_problem(binfmt_dir: Path, target: str) -> str | None:
    """Why qemu-``target`` binaries would not run through binfmt_misc, or None if they would."""
    try:
        status = (binfmt_dir / "status").read_text().strip()
    except OSError:
        return f"binfmt_misc is not mounted at {binfmt_dir}"
    if status != "enabled":
        return "binfmt_misc is disabled"
    try:
        lines = (binfmt_dir / f"qemu-{target}").read_text().splitlines()
    except OSError:
        return f"no binfmt handler qemu-{target} (apt-get install qemu-user-static binfmt-support)"
    if not lines or lines[0] != "enabled":
        return f"binfmt handler qemu-{target} is disabled"
    interpreter = next((ln.split(None, 1)[1] for ln in lines if ln.startswith("interpreter ")), "")
    if not Path(interpreter).exists():
        return f"binfmt handler qemu-{target} points to missing {interpreter or 'nothing'}"
    return None


def probe_arch(
    info: ArchInfo,
    host_arch: str,
    gnu_type: str | None,
    *,
    which: Callable[[str], str | None] = shutil.which,
    binfmt_dir: Path = BINFMT_MISC,
) -> ArchCapability:
    executors: list[str] = []
    missing: list[str] = []
    if info.name == host_arch and which("gcc"):
        executors.append("native")
    if which(info.cross_gcc):
        executors.append("cross")
    elif info.cross_packages:
        missing.append(f"cross: apt-get install {' '.join(info.cross_packages)}")
    else:
        missing.append("cross: Debian ships no cross compiler for it")
    if info.name != host_arch:
        qemu_problem = _qemu_problem(info, which, binfmt_dir, host_arch)
        if qemu_problem is None:
            executors.append("qemu")
        else:
            missing.append(f"qemu: {qemu_problem}")
    return ArchCapability(info.name, gnu_type, tuple(executors), tuple(missing))


# Arches whose binaries the host kernel runs itself: qemu-user-static registers no
# handler for them there, so asking to install it would be a false hint.
RUN_BY_HOST_KERNEL = {("amd64", "i386")}


def _qemu_problem(
    info: ArchInfo, which: Callable[[str], str | None], binfmt_dir: Path, host_arch: str
) -> str | None:
    if info.qemu_user is None or info.qemu_binary is None:
        return "qemu-user cannot run this ABI"
    if info.chroot is None:
        return "no Debian archive carries it, so no chroot"
    if (host_arch, info.name) in RUN_BY_HOST_KERNEL:
        return None if which("mmdebstrap") else "mmdebstrap missing (apt-get install mmdebstrap)"
    if info.qemu_user == host_arch.replace("amd64", "x86_64"):
        return f"{info.name} runs on this host's kernel or not at all: qemu-user cannot help"
    if not which(info.qemu_binary):
        return f"{info.qemu_binary} missing (apt-get install qemu-user-static)"
    if not which("mmdebstrap"):
        return "mmdebstrap missing (apt-get install mmdebstrap)"
    return binfmt_problem(binfmt_dir, info.qemu_user)
