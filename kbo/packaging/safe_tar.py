"""Unpack a tarball that a hostile packaging commit or source package controls.

Checking each member's name as text is not enough: links chain (``a/s1 -> ..`` and then
``a/b/s2 -> ../s1/..`` both look harmless on their own), and a later member can be
written through an earlier link. So the whole archive is first read into a model of the
tree it makes; every link is resolved in that model the way the kernel would resolve it,
through every link on the way; and only then is anything written: directories, then
files, then symlinks last, so that no write ever passes through a link.

Python's ``data`` extraction filter (PEP 706) would do much of this, but Debian 12's
python3 (3.11.2) predates it, and its own resolution has had escapes of its own.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kbo.errors import UserError

MAX_LINK_HOPS = 40  # the kernel's limit too (ELOOP)
_COPY_BLOCK = 1 << 20


@dataclass(frozen=True)
class _Entry:
    """What one path of the unpacked tree will be."""

    member: tarfile.TarInfo
    kind: Literal["dir", "file", "symlink"]
    data: tarfile.TarInfo | None = None  # the member whose bytes a file holds


def _everything(relative: str) -> bool:
    return True


def extract(
    tar: tarfile.TarFile,
    dest: Path,
    where: str,
    *,
    within: str = "debian",
    want: Callable[[str], bool] = _everything,
    links: bool = True,
    special: Literal["refuse", "skip"] = "refuse",
) -> Path:
    """Unpack the members below ``within/`` that ``want`` accepts into ``dest``; return
    ``dest/within``.

    ``want`` sees a member's path below ``within/``. Every member's name is checked,
    wanted or not: an absolute path or a ``..`` refuses the whole archive, naming the
    member. So does a symlink or hard link that leads out of ``within/``, through any
    chain of links, and a member placed below a symlink or a file. Links are unpacked
    only when ``links`` is true (a hard link as a copy of its file). Devices and FIFOs
    are refused, or skipped when ``special`` is ``"skip"``. Members outside ``within/``
    are skipped. Raises UserError naming ``where``.
    """
    jail = _parts(within, within, where)
    files: dict[tuple[str, ...], tarfile.TarInfo] = {}  # every regular file, for hard links
    model: dict[tuple[str, ...], _Entry] = {}
    for member in tar:
        parts = _parts(member.name, member.name, where)
        if parts[: len(jail)] != jail:
            continue
        if parts == jail:
            if not member.isdir():
                raise UserError(f"refusing member {member.name!r}: not a directory", where)
            model[parts] = _Entry(member, "dir")
            continue
        if member.isfile():
            files[parts] = member
        elif member.islnk():
            files[parts] = _hard_link_source(member, files, jail, where)
        entry = _entry(member, files.get(parts), where, links=links, special=special)
        if entry is None or not want("/".join(parts[len(jail) :])):
            continue
        if parts in model and not (entry.kind == "dir" == model[parts].kind):
            raise UserError(f"refusing member {member.name!r}: it is in the archive twice", where)
        model[parts] = entry
    _check_tree(model, jail, where)
    return _write(tar, model, dest, jail)


def _parts(name: str, member: str, where: str) -> tuple[str, ...]:
    """A member's path as its components, or a UserError if it could leave the tree."""
    if "\0" in name:
        raise UserError(f"refusing member {member!r}: a NUL byte in its name", where)
    if name.startswith("/"):
        raise UserError(f"refusing member {member!r}: an absolute path", where)
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UserError(f"refusing member {member!r}: '..' leaves the package", where)
    return parts


def _entry(
    member: tarfile.TarInfo,
    data: tarfile.TarInfo | None,
    where: str,
    *,
    links: bool,
    special: str,
) -> _Entry | None:
    """What ``member`` adds to the tree, if anything; ``data`` holds a file's bytes."""
    if member.isdir():
        return _Entry(member, "dir")
    if member.isfile() or member.islnk():
        return _Entry(member, "file", data) if links or member.isfile() else None
    if member.issym():
        if not member.linkname or "\0" in member.linkname:
            raise UserError(f"refusing symlink {member.name!r}: its target is unusable", where)
        return _Entry(member, "symlink") if links else None
    if special == "skip":
        return None
    raise UserError(f"refusing member {member.name!r}: {_kind(member)}", where)


def _hard_link_source(
    member: tarfile.TarInfo,
    files: dict[tuple[str, ...], tarfile.TarInfo],
    jail: tuple[str, ...],
    where: str,
) -> tarfile.TarInfo:
    """The regular file, earlier in the archive and inside ``jail``, a hard link names."""
    leaves = UserError(
        f"refusing hard link {member.name} -> {member.linkname}: leaves {'/'.join(jail)}/", where
    )
    try:
        target = _parts(member.linkname, member.name, where)
    except UserError:
        raise leaves from None
    if target[: len(jail)] != jail:
        raise leaves
    if target not in files:
        raise UserError(
            f"refusing hard link {member.name} -> {member.linkname}: "
            "not a file earlier in the archive",
            where,
        )
    return files[target]


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a FIFO"
    return f"an unsupported kind of member (type {member.type!r})"


def _check_tree(model: dict[tuple[str, ...], _Entry], jail: tuple[str, ...], where: str) -> None:
    """Every member sits below directories only, and every symlink resolves inside."""
    for parts, entry in model.items():
        for depth in range(len(jail) + 1, len(parts)):
            above = model.get(parts[:depth])
            if above is not None and above.kind != "dir":
                raise UserError(
                    f"refusing member {entry.member.name!r}: it is below the "
                    f"{above.kind} {above.member.name}",
                    where,
                )
        if entry.kind == "symlink":
            _resolve(model, parts, jail, where)


def _resolve(
    model: dict[tuple[str, ...], _Entry], link: tuple[str, ...], jail: tuple[str, ...], where: str
) -> tuple[str, ...]:
    """Where the symlink at ``link`` leads, following every link on its way as the kernel
    would; a UserError if any step of the way leaves ``jail``."""
    name = model[link].member.name
    target = model[link].member.linkname
    current = list(link[:-1])
    pending = _components(target)
    if target.startswith("/"):
        raise UserError(f"refusing symlink {name} -> {target}: leaves {'/'.join(jail)}/", where)
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if len(current) <= len(jail):
                raise UserError(
                    f"refusing symlink {name} -> {target}: leaves {'/'.join(jail)}/", where
                )
            current.pop()
            continue
        current.append(part)
        entry = model.get(tuple(current))
        if entry is None or entry.kind != "symlink":
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            raise UserError(f"refusing symlink {name} -> {target}: a loop of links", where)
        current.pop()
        if entry.member.linkname.startswith("/"):
            raise UserError(
                f"refusing symlink {name} -> {target}: leaves {'/'.join(jail)}/ "
                f"through {entry.member.name}",
                where,
            )
        pending = _components(entry.member.linkname) + pending
    return tuple(current)


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _write(
    tar: tarfile.TarFile, model: dict[tuple[str, ...], _Entry], dest: Path, jail: tuple[str, ...]
) -> Path:
    """Write the checked tree: directories, files, then symlinks, none through a link."""
    directories = {jail[:depth] for depth in range(1, len(jail) + 1)}
    for parts, entry in model.items():
        directories |= {parts[:depth] for depth in range(len(jail) + 1, len(parts))}
        if entry.kind == "dir":
            directories.add(parts)
    dest.mkdir(parents=True, exist_ok=True)
    for parts in sorted(directories, key=len):
        _mkdir(dest.joinpath(*parts))
    for parts, entry in model.items():
        if entry.kind == "file":
            assert entry.data is not None
            _write_file(tar, entry.data, dest.joinpath(*parts), _mtime(entry.member))
    for parts, entry in model.items():
        if entry.kind == "symlink":
            os.symlink(entry.member.linkname, dest.joinpath(*parts))
    for parts in sorted(directories, key=len, reverse=True):  # a file's write changed them
        declared = model.get(parts)
        if declared is not None:
            path = dest.joinpath(*parts)
            path.chmod(0o755)
            mtime = _mtime(declared.member)
            os.utime(path, (mtime, mtime), follow_symlinks=False)
    return dest.joinpath(*jail)


def _mtime(member: tarfile.TarInfo) -> float:
    """The member's mtime, or the epoch for one no file system would take."""
    mtime = member.mtime
    return mtime if isinstance(mtime, int | float) and 0 <= mtime < 2**34 else 0


def _mkdir(path: Path) -> None:
    """A real directory at ``path``: made now, or already one (never a link to one)."""
    try:
        path.mkdir(mode=0o755)
    except FileExistsError:
        if not stat.S_ISDIR(path.lstat().st_mode):
            raise


def _write_file(tar: tarfile.TarFile, data: tarfile.TarInfo, path: Path, mtime: float) -> None:
    source = tar.extractfile(data)
    assert source is not None  # a regular file member always has a data stream
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with source, os.fdopen(os.open(path, flags, 0o600), "wb") as out:
        while block := source.read(_COPY_BLOCK):
            out.write(block)
        out.flush()
        os.fchmod(out.fileno(), 0o755 if data.mode & 0o111 else 0o644)
        os.utime(out.fileno(), (mtime, mtime))
