"""How a worker builds for an arch: native, with a cross toolchain, or emulated in a chroot.

Each executor checks what it needs before anything runs, and says what is missing in
one line that becomes the job's first error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from kbo.arches import ArchInfo
from kbo.config import Config
from kbo.errors import InfraError


class ExecutorError(InfraError):
    """This worker cannot build the job this way: a missing toolchain, handler or chroot."""


@dataclass(frozen=True)
class Execution:
    name: str
    cross_prefix: str = ""
    env: dict[str, str] = field(default_factory=dict)
    chroot: str | None = None  # a foreign-arch root the build sees read-only


def prepare_execution(
    name: str, info: ArchInfo, config: Config, job_dir: Path, log: BinaryIO
) -> Execution:
    from kbo.workers.executors import cross, native, qemu

    if name == "cross":
        return cross.execution(info)
    if name == "native":
        return native.execution(info)
    if name == "qemu":
        return qemu.execution(info, config, job_dir, log)
    if name == "none":
        return Execution("none")
    raise ExecutorError(f"unknown executor {name!r}")
