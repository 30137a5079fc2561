"""The qemu executor: a foreign-arch chroot from mmdebstrap, run through qemu-user-static
and binfmt_misc (or by the host kernel itself, for i386 on amd64). The chroot is made
once per (arch, suite), without root (mmdebstrap's unshare mode, which needs subordinate
ids for the worker's user), cached, and shared read-only: builds write only to /build
and /tmp. ``kbo chroot ARCH --rebuild`` makes it anew.
"""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path
from typing import BinaryIO

from kbo.arches import ArchInfo
from kbo.config import Config
from kbo.packaging import dpkg_arch
from kbo.workers import runner
from kbo.workers.capabilities import BINFMT_MISC, RUN_BY_HOST_KERNEL, binfmt_problem
from kbo.workers.executors import Execution, ExecutorError

# What a kernel build needs inside the chroot, beyond the buildd variant.
CHROOT_PACKAGES = (
    "bc",
    "bison",
    "flex",
    "cpio",
    "kmod",
    "rsync",
    "quilt",
    "xz-utils",
    "libssl-dev",
    "libelf-dev",
    "fakeroot",
    "debhelper",
    "dh-exec",
    "dh-python",
    "python3",
    "python3-jinja2",
    "kernel-wedge",
)
CHROOT_TIMEOUT = 3600


def execution(
    info: ArchInfo, config: Config, job_dir: Path, log: BinaryIO, binfmt_dir: Path = BINFMT_MISC
) -> Execution:
    if info.qemu_user is None:
        raise ExecutorError(f"qemu-user cannot run {info.name} binaries")
    run_by_host = (dpkg_arch.host_arch(), info.name) in RUN_BY_HOST_KERNEL
    if not run_by_host and (problem := binfmt_problem(binfmt_dir, info.qemu_user)) is not None:
        raise ExecutorError(problem)
    root = ensure_chroot(info, config, log)
    return Execution("qemu", "", {"DEB_BUILD_OPTIONS": "nocheck nodoc"}, str(root))


def chroot_path(info: ArchInfo, config: Config) -> Path:
    suite = info.chroot.suite if info.chroot else "none"
    return config.cache_path / "chroots" / f"{info.name}-{suite}-unshare"


def ensure_chroot(info: ArchInfo, config: Config, log: BinaryIO, rebuild: bool = False) -> Path:
    """The cached chroot for the arch, made with mmdebstrap first if needed."""
    if info.chroot is None:
        raise ExecutorError(f"no Debian archive is configured for {info.name}: no chroot")
    if not shutil.which("mmdebstrap"):
        raise ExecutorError("mmdebstrap missing (apt-get install mmdebstrap)")
    root = chroot_path(info, config)
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = root.parent / f"{root.name}.ready"
        if stamp.exists() and not rebuild:
            return _with_mount_points(root)
        stamp.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        tarball = root.parent / f"{root.name}.tar"
        argv = [
            "mmdebstrap",
            "--mode=unshare",
            "--variant=buildd",
            f"--arch={info.name}",
            f"--keyring={info.chroot.keyring}",
            f"--include={','.join(CHROOT_PACKAGES)}",
            info.chroot.suite,
            str(tarball),
            info.chroot.mirror,
        ]
        log.write(f"kbo: making the {info.name} chroot with mmdebstrap\n".encode())
        result = runner.run(argv, log=log, timeout=CHROOT_TIMEOUT, no_output_timeout=1200)
        if result.ok:
            # Unpacked as the worker's user: the chroot's files become the worker's own,
            # device nodes are left out (the sandbox brings its own /dev).
            root.mkdir()
            argv = ["tar", "-x", "-f", str(tarball), "-C", str(root), "--exclude=./dev/*"]
            result = runner.run(argv, log=log, timeout=CHROOT_TIMEOUT, no_output_timeout=1200)
        tarball.unlink(missing_ok=True)
        if not result.ok:
            shutil.rmtree(root, ignore_errors=True)
            raise ExecutorError(f"mmdebstrap for {info.name} {result.describe()}")
        stamp.touch()
        return _with_mount_points(root)


def _with_mount_points(root: Path) -> Path:
    """What the sandbox mounts over must exist in the chroot: it is read-only there."""
    (root / "build").mkdir(exist_ok=True)
    for name in ("passwd", "group", "hosts"):
        (root / "etc" / name).touch(exist_ok=True)
    return root
