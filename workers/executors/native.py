"""The native executor: the host builds for its own arch."""

from __future__ import annotations

import shutil

from kbo.arches import ArchInfo
from kbo.packaging import dpkg_arch
from kbo.workers.executors import Execution, ExecutorError


def execution(info: ArchInfo) -> Execution:
    if info.name != dpkg_arch.host_arch():
        raise ExecutorError(f"this host is {dpkg_arch.host_arch()}, not {info.name}")
    if not shutil.which("gcc"):
        raise ExecutorError("missing compiler gcc (apt-get install build-essential)")
    return Execution("native", "", {"DEB_BUILD_OPTIONS": "nocheck nodoc"})
