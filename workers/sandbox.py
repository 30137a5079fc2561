"""Run a build step in its own namespaces, without root: bubblewrap (``bwrap``).

Why bwrap rather than kbo's own code: it is small, well kept and what Flatpak relies on,
and it gets the hard parts right in one place: a user namespace so no step ever holds
a capability on the host, ``no_new_privs``, every capability dropped, a fresh /dev
(``nodev``, the usual devices only), a read-only /proc/sys, a new session (no
TIOCSTI), and ``--die-with-parent``, so a step dies with the worker however it dies.
When the PID namespace's first process ends, the kernel kills the rest: nothing a step
starts outlives it.

What the step sees:
- ``/usr`` and the rest of the host's system read-only, or a qemu chroot read-only;
- an ``/etc`` of kbo's making: ``passwd``, ``group`` and ``hosts`` for the build user,
  plus an explicit allow-list of host files the toolchains read (``ETC_FROM_HOST``);
- its job's directory at ``/build`` (writable), fresh tmpfs ``/tmp`` and ``/var/tmp``,
  and the read-only binds its caller names; nothing else of the host.

A shared tree that a step may change but must not change for others (the prepared
source) is an overlay. bwrap 0.8 (bookworm) cannot mount one, so ``unshare`` first
makes a user and mount namespace where the worker may mount it, and bwrap runs inside.
The limits ride on ``prlimit``: memory per process, processes, file size.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

# The build's identity inside its namespace; it maps to the worker's own user outside.
BUILD_USER, BUILD_UID = "kbo-build", 1000
HOST_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# What toolchains read from the host's /etc, and nothing more: no config, no secrets.
ETC_FROM_HOST = (
    "alternatives",
    "dpkg",
    "debian_version",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "os-release",
    "perl",
    "python3",
    "python3.11",
)
OVERLAY_HELPER = Path(__file__).with_name("mount_overlays.py")
# The whole chain (prlimit, unshare, bwrap) starts from this environment, not the
# worker's: bwrap's own process is PID 1 in the step's namespace, and a step can read
# its /proc/1/environ; ``--clearenv`` only cleans the command's.
WRAPPER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


@dataclass(frozen=True)
class Overlay:
    """``lower`` seen at ``target`` with changes going to ``upper``; ``merged`` is where
    the worker mounts it first (a directory of its own, outside the step's reach)."""

    lower: str
    upper: str
    work: str
    merged: str
    target: str


@dataclass(frozen=True)
class Limits:
    memory_bytes: int  # address space, per process
    processes: int
    file_bytes: int  # largest file a step may write


@dataclass(frozen=True)
class Spec:
    etc: str  # the worker's synthesized /etc files (passwd, group, hosts)
    chroot: str | None = None  # a foreign-arch root, read-only; None: the host's
    overlays: tuple[Overlay, ...] = ()
    binds: tuple[tuple[str, str, bool], ...] = ()  # (host path, target, writable)
    network: bool = False
    workdir: str = "/build"
    env: dict[str, str] = field(default_factory=dict)
    limits: Limits | None = None


def wrap(argv: list[str], spec: Spec) -> list[str]:
    """The argv that runs ``argv`` as the step ``spec`` describes."""
    command = [*_bwrap(spec), "--", *argv]
    if spec.overlays:
        command = [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "--",
            sys.executable,
            "-I",
            "-S",
            str(OVERLAY_HELPER),
            *_overlay_args(spec.overlays),
            "--",
            *command,
        ]
    if spec.limits:
        command = [
            "prlimit",
            f"--as={spec.limits.memory_bytes}",
            f"--nproc={spec.limits.processes}",
            f"--fsize={spec.limits.file_bytes}",
            "--",
            *command,
        ]
    return ["env", "-i", f"PATH={WRAPPER_PATH}", *command]


def _bwrap(spec: Spec) -> list[str]:
    args = [
        "bwrap",
        "--unshare-all",
        *(["--share-net"] if spec.network else []),
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        str(BUILD_UID),
        "--gid",
        str(BUILD_UID),
        "--hostname",
        "kbo-build",
    ]
    if spec.chroot:
        args += ["--ro-bind", spec.chroot, "/"]
    else:
        args += _host_root()
    args += [
        "--ro-bind",
        f"{spec.etc}/passwd",
        "/etc/passwd",
        "--ro-bind",
        f"{spec.etc}/group",
        "/etc/group",
        "--ro-bind",
        f"{spec.etc}/hosts",
        "/etc/hosts",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    # /tmp and /var/tmp are the host's memory, out of the disk watchdog's sight: each
    # holds no more than the largest file the step may write (bwrap's default is half
    # the RAM).
    size = ["--size", str(spec.limits.file_bytes)] if spec.limits else []
    args += [*size, "--tmpfs", "/tmp", *size, "--tmpfs", "/var/tmp"]  # noqa: S108
    for source, target, writable in spec.binds:
        args += ["--bind" if writable else "--ro-bind", source, target]
    for overlay in spec.overlays:
        args += ["--bind", overlay.merged, overlay.target]
    args += ["--chdir", spec.workdir, "--clearenv"]
    for key, value in sorted(spec.env.items()):
        args += ["--setenv", key, value]
    return args


def _host_root() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in HOST_TOP_LEVEL:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--ro-bind", "/var/lib/dpkg", "/var/lib/dpkg", "--dir", "/etc"]
    for name in ETC_FROM_HOST:
        path = f"/etc/{name}"
        if os.path.lexists(path):
            args += ["--ro-bind", path, path]
    return args


def _overlay_args(overlays: tuple[Overlay, ...]) -> list[str]:
    paths = [(o.lower, o.upper, o.work, o.merged) for o in overlays]
    for path in (p for group in paths for p in group):
        if any(c in path for c in ":,\n"):  # the overlay's option syntax cannot quote them
            raise ValueError(f"cannot overlay {path!r}: ':' and ',' are not allowed there")
    return [":".join(group) for group in paths]


def write_etc(directory: Path) -> Path:
    """The /etc files every step gets: the build user, its group, and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "passwd": (
            "root:x:0:0:root:/root:/bin/sh\n"
            f"{BUILD_USER}:x:{BUILD_UID}:{BUILD_UID}:kbo build:/build:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        "group": f"root:x:0:\n{BUILD_USER}:x:{BUILD_UID}:\nnogroup:x:65534:\n",
        "hosts": "127.0.0.1 localhost kbo-build\n::1 localhost ip6-localhost\n",
    }
    for name, text in files.items():
        path = directory / name
        if not path.is_file() or path.read_text() != text:
            temporary = directory / f".{name}.new"
            temporary.write_text(text)
            temporary.chmod(0o644)
            temporary.replace(path)
    return directory


def problem() -> str | None:
    """Why this host cannot run sandboxed steps as this user, or None when it can."""
    missing = [tool for tool in ("bwrap", "unshare", "prlimit") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} missing (apt-get install bubblewrap util-linux)"
    return None
