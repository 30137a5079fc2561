"""A hostile packaging commit or source package cannot reach outside the tree kbo unpacks
it into: not by a member's name, not by a link, not by a chain of links that each look
harmless on their own. Each is refused in one line naming the member.

Both places that unpack such data are tested: ``unpack_debian`` (``kbo import-dsc`` and
``kbo matrix`` of a .dsc) on real tarballs, and the worker's export of ``debian/`` on
real git repositories.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from kbo.errors import KboError, UserError
from kbo.packaging import safe_tar
from kbo.packaging.dsc import unpack_debian
from kbo.workers import job_files, prepared_tree
from kbo.workers.prepared_tree import _export_debian
from tests.conftest import LINUX_61, RunKbo, git

# The newest entry of a real changelog.
CHANGELOG = (LINUX_61 / "debian/changelog").read_bytes().split(b"\n\nlinux (")[0] + b"\n"


Member = tuple[tarfile.TarInfo, io.BytesIO | None]


def member(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"owned\n"
) -> Member:
    """One tar member: a file holding ``data``, or a link or device (``kind``)."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, link, 0o644, 1700000000
    if kind != tarfile.REGTYPE:
        return info, None
    info.size = len(data)
    return info, io.BytesIO(data)


def sym(name: str, link: str) -> Member:
    return member(name, tarfile.SYMTYPE, link)


def chain(depth: int) -> list[Member]:
    """``debian/d/s -> ..``, then one level deeper each time ``s -> ../s/..``: read as
    text, every link stays inside ``debian/``; resolved, the n-th climbs n - 1 levels
    above it. The textual checks kbo had let all of them through."""
    return [
        sym("debian/" + "d/" * n + "s", ".." if n == 1 else "../s/..") for n in range(1, depth + 1)
    ]


def write_tarball(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        tar.addfile(*member("debian/changelog", data=CHANGELOG))
        for info, data in members:
            tar.addfile(info, data)
    return path


def tree(root: Path) -> set[str]:
    """Every path below ``root``, links not followed."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# -- unpack_debian: the debian tarball of a .dsc ---------------------------------------

DEEP = 20  # deeper than any tmp_path is below /, and fewer hops than the kernel's 40

HOSTILE = {
    "chained-symlinks-then-a-file-through-them": (
        [*chain(3), member("debian/d/d/d/s/escaped")],
        "refusing symlink debian/d/d/s -> ../s/..: leaves debian/",
    ),
    "chained-symlinks-then-the-changelog-through-them": (
        [*chain(DEEP), sym("debian/control", "d/" * DEEP + "s/etc/hostname")],
        "refusing symlink debian/d/d/s -> ../s/..: leaves debian/",
    ),
    "absolute-member": (
        [member("/tmp/kbo-escape")],
        "refusing member '/tmp/kbo-escape': an absolute path",
    ),
    "dotdot-member": (
        [member("debian/../../escape")],
        "refusing member 'debian/../../escape': '..' leaves the package",
    ),
    "hard-link-to-an-absolute-path": (
        [member("debian/passwd", tarfile.LNKTYPE, "/etc/passwd")],
        "refusing hard link debian/passwd -> /etc/passwd: leaves debian/",
    ),
    "hard-link-up-and-out": (
        [member("debian/passwd", tarfile.LNKTYPE, "debian/../../etc/passwd")],
        "refusing hard link debian/passwd -> debian/../../etc/passwd: leaves debian/",
    ),
    "hard-link-to-a-member-outside-debian": (
        [member("other/file"), member("debian/file", tarfile.LNKTYPE, "other/file")],
        "refusing hard link debian/file -> other/file: leaves debian/",
    ),
    "hard-link-to-nothing-in-the-archive": (
        [member("debian/file", tarfile.LNKTYPE, "debian/later")],
        "refusing hard link debian/file -> debian/later: not a file earlier in the archive",
    ),
    "symlink-to-an-absolute-path": (
        [sym("debian/rules", "/etc/shadow")],
        "refusing symlink debian/rules -> /etc/shadow: leaves debian/",
    ),
    "symlink-up-and-out": (
        [sym("debian/rules", "../../etc/shadow")],
        "refusing symlink debian/rules -> ../../etc/shadow: leaves debian/",
    ),
    "symlink-through-an-absolute-symlink": (
        [sym("debian/root", "/"), sym("debian/rules", "root/etc/shadow")],
        "refusing symlink debian/root -> /: leaves debian/",
    ),
    "a-file-below-a-symlink-that-stays-inside": (
        [member("debian/real/keep"), sym("debian/s", "real"), member("debian/s/file")],
        "refusing member 'debian/s/file': it is below the symlink debian/s",
    ),
    "a-loop-of-links": (
        [sym("debian/a", "b"), sym("debian/b", "a")],
        "refusing symlink debian/a -> b: a loop of links",
    ),
    "debian-itself-a-symlink": (
        [sym("debian", "/etc")],
        "refusing member 'debian': not a directory",
    ),
    "the-same-name-twice": (
        [member("debian/rules"), sym("debian/rules", "changelog")],
        "refusing member 'debian/rules': it is in the archive twice",
    ),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_unpack_debian_refuses_a_hostile_member_naming_it(tmp_path: Path, case: str) -> None:
    members, says = HOSTILE[case]
    tarball = write_tarball(tmp_path / "linux_1-1.debian.tar.xz", members)
    dest = tmp_path / "deep" / "dest"
    dest.mkdir(parents=True)
    with pytest.raises(UserError) as refused:
        unpack_debian(tarball, dest, lambda _: True, links=True)
    assert (refused.value.where, refused.value.message) == (str(tarball), says)
    assert tree(tmp_path) == {"deep", "deep/dest", tarball.name}, "nothing was written"


def test_unpack_debian_without_links_still_refuses_a_hard_link_out(tmp_path: Path) -> None:
    tarball = write_tarball(
        tmp_path / "linux_1-1.debian.tar.xz",
        [member("debian/passwd", tarfile.LNKTYPE, "/etc/passwd")],
    )
    with pytest.raises(UserError, match="refusing hard link debian/passwd -> /etc/passwd"):
        unpack_debian(tarball, tmp_path / "dest", lambda _: True)


def test_unpack_debian_skips_devices_and_fifos(tmp_path: Path) -> None:
    tarball = write_tarball(
        tmp_path / "linux_1-1.debian.tar.xz",
        [member("debian/null", tarfile.CHRTYPE), member("debian/pipe", tarfile.FIFOTYPE)],
    )
    root = unpack_debian(tarball, tmp_path / "dest", lambda _: True, links=True)
    assert tree(root) == {"changelog"}


def test_unpack_debian_keeps_links_that_stay_inside(tmp_path: Path) -> None:
    tarball = write_tarball(
        tmp_path / "linux_1-1.debian.tar.xz",
        [
            member("debian/lib/python/debian_linux/__init__.py", data=b"# kbo\n"),
            sym("debian/bin/debian_linux", "../lib/python/debian_linux"),
            sym("debian/bin/up", "../bin/./../lib/../bin"),  # climbs, but never out
            member("debian/copy", tarfile.LNKTYPE, "debian/changelog"),
            sym("./debian/dangling", "not/yet/there"),
        ],
    )
    root = unpack_debian(tarball, tmp_path / "dest", lambda _: True, links=True)
    assert (root / "bin/debian_linux/__init__.py").read_bytes() == b"# kbo\n"
    assert (root / "bin/up").resolve() == (root / "bin").resolve()
    assert (root / "copy").read_bytes() == CHANGELOG and not (root / "copy").is_symlink()
    assert os.readlink(root / "dangling") == "not/yet/there"
    assert (root / "changelog").stat().st_mtime == 1700000000


def test_unpack_debian_without_links_leaves_them_out(tmp_path: Path) -> None:
    tarball = write_tarball(
        tmp_path / "linux_1-1.debian.tar.xz",
        [sym("debian/rules", "changelog"), member("debian/copy", tarfile.LNKTYPE, "debian/rules")],
    )
    with pytest.raises(UserError, match="not a file earlier in the archive"):
        unpack_debian(tarball, tmp_path / "dest", lambda _: True)
    tarball = write_tarball(tmp_path / "ok.tar.xz", [sym("debian/rules", "changelog")])
    assert tree(unpack_debian(tarball, tmp_path / "ok", lambda _: True)) == {"changelog"}


def test_import_dsc_refuses_chained_symlinks_in_one_line(kbo: RunKbo, tmp_path: Path) -> None:
    """The end-to-end case: kbo import-dsc of a source package whose debian tarball
    writes a file through a chain of symlinks."""
    tarball = write_tarball(
        tmp_path / "linux_6.1.176-1.debian.tar.xz", [*chain(4), member("debian/d/d/d/d/s/x")]
    )
    result = kbo("import-dsc", dsc_for(tarball), tmp_path / "work" / "repo")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"kbo: {tarball}: refusing symlink debian/d/d/s -> ../s/..: leaves debian/"
    ]
    assert tree(tmp_path) == {tarball.name, "linux_6.1.176-1.dsc", "work"}  # nothing else


def dsc_for(tarball: Path) -> Path:
    """A .dsc beside ``tarball`` that lists it, as dpkg-source would."""
    data = tarball.read_bytes()
    md5, sha256 = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()  # noqa: S324
    dsc = tarball.parent / "linux_6.1.176-1.dsc"
    dsc.write_text(
        "Format: 3.0 (quilt)\nSource: linux\nVersion: 6.1.176-1\n"
        f"Checksums-Sha256:\n {sha256} {len(data)} {tarball.name}\n"
        f"Files:\n {md5} {len(data)} {tarball.name}\n"
    )
    return dsc


# -- the worker's export of debian/ from a packaging repository -------------------------


def commit_links(repo: Path, links: dict[str, str], files: dict[str, bytes]) -> str:
    """A real git repository whose one commit holds ``files`` and ``links`` (symlinks,
    committed as they are: git never follows them)."""
    repo.mkdir()
    for name, data in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(data)
    for name, target in links.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).symlink_to(target)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hostile packaging")
    return git(repo, "rev-parse", "HEAD")


def test_export_refuses_a_changelog_reaching_etc_through_chained_symlinks(
    tmp_path: Path,
) -> None:
    """Before: every link passed the textual check, and debian/changelog was read from
    /etc/hostname."""
    links = {info.name: info.linkname for info, _ in chain(DEEP)}
    links["debian/changelog"] = "d/" * DEEP + "s/etc/hostname"
    repo = tmp_path / "linux"
    commit = commit_links(repo, links, {"debian/rules": b"#!/usr/bin/make -f\n"})
    assert (repo / "debian/changelog").resolve() == Path("/etc/hostname")  # the trap is real
    src = tmp_path / "prepared" / "src"
    src.mkdir(parents=True)
    with pytest.raises(UserError) as refused:
        _export_debian(repo, commit, src)
    assert str(refused.value) == (
        f"{repo} at {commit[:12]}: refusing symlink debian/changelog -> "
        f"{links['debian/changelog']}: leaves debian/"
    )
    assert tree(tmp_path / "prepared") == {"src"}


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("debian/changelog", "/etc/hostname"),
        ("debian/changelog", "../../../../../../../../../../etc/hostname"),
        ("debian/changelog", "../src/../debian/../../changelog"),
    ],
)
def test_export_refuses_a_symlink_out_of_debian(tmp_path: Path, link: str, target: str) -> None:
    repo = tmp_path / "linux"
    commit = commit_links(repo, {link: target}, {"debian/rules": b"#!/usr/bin/make -f\n"})
    (tmp_path / "src").mkdir()
    with pytest.raises(UserError, match=f"refusing symlink {link} -> {target}: leaves debian/"):
        _export_debian(repo, commit, tmp_path / "src")
    assert tree(tmp_path / "src") == set()


def test_export_of_real_packaging_keeps_its_links_and_times(tmp_path: Path) -> None:
    repo = tmp_path / "linux"
    commit = commit_links(
        repo,
        {"debian/bin/debian_linux": "../lib/python/debian_linux"},
        {
            "debian/changelog": CHANGELOG,
            "debian/lib/python/debian_linux/__init__.py": b"# kbo\n",
            "debian/rules": b"#!/usr/bin/make -f\n",
        },
    )
    (repo / "debian/rules").chmod(0o755)
    git(repo, "commit", "-q", "-am", "rules: executable")
    commit = git(repo, "rev-parse", "HEAD")
    src = tmp_path / "src"
    src.mkdir()
    _export_debian(repo, commit, src)
    debian = src / "debian"
    assert (debian / "bin/debian_linux/__init__.py").read_bytes() == b"# kbo\n"
    assert os.access(debian / "rules", os.X_OK)
    assert job_files.read_text(src, "debian/changelog").encode() == CHANGELOG
    when = int(git(repo, "log", "-1", "--format=%ct"))
    # Every file dated as the commit, as git archive dates them: make sees none as newer.
    assert {int(p.lstat().st_mtime) for p in debian.rglob("*") if not p.is_symlink()} == {when}


def test_reading_the_changelog_does_not_follow_a_symlink_out(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "debian").mkdir(parents=True)
    (tmp_path / "secret").write_bytes(b"root only\n")
    (src / "debian/changelog").symlink_to("../../secret")
    with pytest.raises(job_files.UnsafeFile, match="is a symlink, not a regular file"):
        job_files.read_text(src, "debian/changelog")
    (src / "debian/changelog").unlink()
    os.mkfifo(src / "debian/changelog")
    with pytest.raises(job_files.UnsafeFile, match="debian/changelog is not a regular file"):
        job_files.read_text(src, "debian/changelog")
    (src / "debian/changelog").unlink()
    (src / "debian").rename(src / "elsewhere")
    (src / "debian").symlink_to("elsewhere")  # a directory on the way is a symlink
    with pytest.raises(job_files.UnsafeFile, match="debian is not a directory"):
        job_files.read_text(src, "debian/changelog")


def test_export_refuses_what_git_archive_never_makes(tmp_path: Path) -> None:
    """A device in the tar stream (a hostile ``git`` could send one) is refused, not
    skipped: the export, unlike a .dsc, has no reason to hold one."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(*member("debian/null", tarfile.CHRTYPE))
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar, pytest.raises(KboError, match="a device"):
        safe_tar.extract(tar, tmp_path, "here", within="debian")


def zeros_commit(repo: Path, size: int) -> str:
    """A commit whose debian/ holds a file of ``size`` zeros: little in git, a lot out."""
    return commit_links(
        repo, {}, {"debian/rules": b"#!/usr/bin/make -f\n", "debian/zeros": bytes(size)}
    )


def test_export_of_a_large_debian_streams_through_disk_not_memory(tmp_path: Path) -> None:
    """Before: git archive's output was held whole, and a 256 MiB file of zeros took
    543 MiB of the worker's memory."""
    commit = zeros_commit(tmp_path / "linux", 64 << 20)
    (tmp_path / "src").mkdir()
    tracemalloc.start()
    try:
        _export_debian(tmp_path / "linux", commit, tmp_path / "src")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"exporting debian/ peaked at {peak >> 20} MiB"
    assert (tmp_path / "src/debian/zeros").stat().st_size == 64 << 20


def test_export_over_the_limit_stops_git_and_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepared_tree, "MAX_DEBIAN_EXPORT", 4 << 20, raising=False)
    repo = tmp_path / "linux"
    commit = zeros_commit(repo, 32 << 20)
    (tmp_path / "prepared" / "src").mkdir(parents=True)
    with pytest.raises(KboError) as refused:
        _export_debian(repo, commit, tmp_path / "prepared" / "src")
    assert str(refused.value) == (
        f"{repo} at {commit[:12]}: debian/ takes more than 4 MiB as a tar archive"
    )
    assert tree(tmp_path / "prepared") == {"src"}  # no temporary file left
