"""Run a build step in its own namespaces: a clean root via pivot_root, a fresh /proc,
no network unless the recipe asks for one, and an unprivileged build user.

``wrap(argv, spec)`` returns the argv that does it: util-linux ``unshare`` creates the
namespaces, then this module, run as the new PID 1, assembles the root and execs the
step. When the step ends, the kernel kills everything left in its PID namespace.

The root is either assembled from the host (read-only /usr and /etc, kbo's own config
masked, no /root) or an emulated chroot from mmdebstrap. Trees shared between jobs
(the prepared source, the chroot) are mounted as overlays, so a build never changes
them.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1,
    2,
    4,
    32,
    4096,
    16384,
    1 << 18,
)
MNT_DETACH = 2
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
HOST_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
MASKED = ("/etc/kbo",)


@dataclass(frozen=True)
class Overlay:
    lower: str
    upper: str
    work: str
    target: str


@dataclass(frozen=True)
class Spec:
    staging: str
    chroot: Overlay | None = None
    overlays: tuple[Overlay, ...] = ()
    binds: tuple[tuple[str, str, bool], ...] = ()
    network: bool = False
    uid: int | None = None
    gid: int | None = None
    workdir: str = "/build"
    env: dict[str, str] = field(default_factory=dict)


def wrap(argv: list[str], spec: Spec) -> list[str]:
    namespaces = ["--mount", "--pid", "--fork", "--ipc", "--uts"]
    if not spec.network:
        namespaces.append("--net")
    return [
        "unshare",
        *namespaces,
        "--",
        sys.executable,
        "-m",
        "kbo.workers.sandbox",
        json.dumps(asdict(spec)),
        *argv,
    ]


# -- inside the namespaces -------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def _b(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _bind(source: str, target: str, writable: bool) -> None:
    _mount(source, target, None, MS_BIND | MS_REC)
    if not writable:
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def _overlay(overlay: Overlay, root: str) -> None:
    target = root + overlay.target
    os.makedirs(target, exist_ok=True)
    _mount(
        "overlay",
        target,
        "overlay",
        0,
        f"lowerdir={overlay.lower},upperdir={overlay.upper},workdir={overlay.work}",
    )


def _host_root(root: str) -> None:
    for name in HOST_TOP_LEVEL:
        path = f"/{name}"
        if os.path.islink(path):
            os.symlink(os.readlink(path), f"{root}{path}")
        elif os.path.isdir(path):
            os.mkdir(f"{root}{path}")
            _bind(path, f"{root}{path}", False)
    for path in ("/usr", "/etc", "/var/lib/dpkg"):
        os.makedirs(f"{root}{path}", exist_ok=True)
        _bind(path, f"{root}{path}", False)
    for path in MASKED:
        if os.path.isdir(path):
            _mount("tmpfs", f"{root}{path}", "tmpfs", MS_NOSUID | MS_NODEV, "size=4k")


def _devices(root: str) -> None:
    dev = f"{root}/dev"
    os.makedirs(dev, exist_ok=True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=64k")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            Path(f"{dev}/{name}").touch()
            _bind(f"/dev/{name}", f"{dev}/{name}", True)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{dev}/{name}")
    os.makedirs(f"{dev}/shm")
    _mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")


def enter(spec: Spec) -> None:
    """Assemble the root at ``spec.staging`` and pivot into it. Runs as root, in the ns."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = spec.staging
    _mount("tmpfs", root, "tmpfs", MS_NOSUID, "mode=755")
    if spec.chroot:
        _overlay(Overlay(spec.chroot.lower, spec.chroot.upper, spec.chroot.work, ""), root)
    else:
        _host_root(root)
    _devices(root)
    for path in ("/proc", "/tmp", "/var/tmp", "/build"):  # noqa: S108 (inside the new root)
        os.makedirs(f"{root}{path}", exist_ok=True)
    _mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV)
    for path in ("/tmp", "/var/tmp"):  # noqa: S108 (fresh tmpfs in the new root)
        _mount("tmpfs", f"{root}{path}", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for source, target, writable in spec.binds:
        os.makedirs(f"{root}{target}", exist_ok=True)
        _bind(source, f"{root}{target}", writable)
    for overlay in spec.overlays:
        _overlay(overlay, root)
    os.makedirs(f"{root}/.old-root")
    subprocess.run(["pivot_root", root, f"{root}/.old-root"], check=True)
    os.chdir("/")
    if _libc.umount2(b"/.old-root", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "umount the old root")
    os.rmdir("/.old-root")
    _libc.sethostname(b"kbo-build", 9)


def main(argv: list[str]) -> None:
    spec_data = json.loads(argv[0])
    for key in ("chroot",):
        if spec_data[key]:
            spec_data[key] = Overlay(**spec_data[key])
    spec_data["overlays"] = tuple(Overlay(**o) for o in spec_data["overlays"])
    spec_data["binds"] = tuple(tuple(b) for b in spec_data["binds"])
    spec = Spec(**spec_data)
    try:
        enter(spec)
        if spec.gid is not None:
            os.setgroups([])
            os.setgid(spec.gid)
        if spec.uid is not None:
            os.setuid(spec.uid)
        os.chdir(spec.workdir)
    except OSError as e:
        print(f"kbo sandbox: {e}", file=sys.stderr, flush=True)
        sys.exit(125)
    os.execvpe(argv[1], argv[1:], spec.env)  # noqa: S606 (an argv list, by design)


if __name__ == "__main__":
    main(sys.argv[1:])
