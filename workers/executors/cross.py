"""The cross executor: the host's cross toolchain, with dpkg-architecture's view of the arch."""

from __future__ import annotations

import shutil
import subprocess

from kbo.arches import ArchInfo
from kbo.workers.executors import Execution, ExecutorError


def execution(info: ArchInfo) -> Execution:
    if not shutil.which(info.cross_gcc):
        hint = (
            f"apt-get install {' '.join(info.cross_packages)}"
            if info.cross_packages
            else "Debian ships none for this arch"
        )
        raise ExecutorError(f"missing cross toolchain {info.cross_gcc} ({hint})")
    return Execution(
        "cross",
        info.cross_prefix,
        dpkg_architecture(info.name)
        | {"DEB_BUILD_PROFILES": "cross nodoc", "DEB_BUILD_OPTIONS": "nocheck nodoc"},
    )


def dpkg_architecture(arch: str) -> dict[str, str]:
    """The DEB_* variables a cross build for ``arch`` sees (``dpkg-architecture -a``)."""
    result = subprocess.run(
        ["dpkg-architecture", "-f", f"-a{arch}"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ExecutorError(f"dpkg-architecture -a{arch} failed: {result.stderr.strip()}")
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
