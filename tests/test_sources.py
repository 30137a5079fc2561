"""SOURCE as a git checkout (its working tree, or a commit with --rev) and as a .dsc."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from tests.conftest import KBO, LINUX_61, RunKbo, copy_debian, git


@pytest.fixture
def packaging_repo(tmp_path: Path) -> Path:
    """A git repository holding the 6.1 fixture's debian/, committed once."""
    repo = copy_debian(LINUX_61, tmp_path / "linux")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Import linux 6.1.176-1 packaging")
    return repo


def flavours(kbo: RunKbo, source: Path, *args: str, cwd: Path | None = None) -> set[str]:
    result = kbo("matrix", source, "--json", "--arch", "alpha", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return {job["flavour"] for job in json.loads(result.stdout)}


def test_commit_adding_an_alpha_flavour_shows_only_at_the_new_revision(
    kbo: RunKbo, packaging_repo: Path
) -> None:
    old = git(packaging_repo, "rev-parse", "HEAD")
    defines = packaging_repo / "debian/config/alpha/defines"
    defines.write_text(
        defines.read_text().replace(
            "flavours: alpha-generic alpha-smp", "flavours: alpha-generic alpha-smp alpha-legacy"
        )
    )
    git(packaging_repo, "commit", "-q", "-am", "alpha: add alpha-legacy flavour")

    assert "alpha-legacy" in flavours(kbo, packaging_repo)
    assert "alpha-legacy" in flavours(kbo, packaging_repo, "--rev", "HEAD")
    assert "alpha-legacy" not in flavours(kbo, packaging_repo, "--rev", old)
    assert "alpha-legacy" not in flavours(kbo, packaging_repo, "--rev", "HEAD~1")


def test_rev_reads_git_objects_not_the_working_tree(kbo: RunKbo, packaging_repo: Path) -> None:
    (packaging_repo / "debian/config/alpha/defines").write_text("this is not INI\n")
    (packaging_repo / "debian/changelog").unlink()
    before = git(packaging_repo, "status", "--porcelain")

    assert flavours(kbo, packaging_repo, "--rev", "HEAD") == {"alpha-generic", "alpha-smp"}
    assert git(packaging_repo, "status", "--porcelain") == before


def test_header_names_the_commit_read_with_rev(kbo: RunKbo, packaging_repo: Path) -> None:
    result = kbo("matrix", packaging_repo, "--rev", "HEAD", "--arch", "hppa")
    assert git(packaging_repo, "rev-parse", "--short=12", "HEAD") in result.stdout
    assert "linux 6.1.176-1 (bookworm-security)" in result.stdout


def add_alpha_flavour(checkout: Path, flavour: str) -> None:
    defines = checkout / "debian/config/alpha/defines"
    defines.write_text(
        defines.read_text().replace(
            "flavours: alpha-generic alpha-smp", f"flavours: alpha-generic alpha-smp {flavour}"
        )
    )


def test_matrix_of_a_checkout_shows_uncommitted_flavour_and_rev_head_does_not(
    kbo: RunKbo, tmp_path: Path
) -> None:
    dsc = make_dsc(tmp_path, copy_debian(LINUX_61, tmp_path / "tree"))
    checkout = tmp_path / "linux"
    assert kbo("import-dsc", dsc, checkout).returncode == 0
    add_alpha_flavour(checkout, "alpha-legacy")
    assert git(checkout, "status", "--porcelain") == "M debian/config/alpha/defines"

    for source in ("debian", ".", checkout, checkout / "debian"):
        assert "alpha-legacy" in flavours(kbo, Path(source), cwd=checkout), source
        assert flavours(kbo, Path(source), "--rev", "HEAD", cwd=checkout) == {
            "alpha-generic",
            "alpha-smp",
        }, source
    assert "alpha-legacy" in flavours(kbo, Path(".."), cwd=checkout / "debian/config")


def test_rev_of_debian_dir_inside_a_checkout_reads_it_at_its_place_in_the_commit(
    kbo: RunKbo, tmp_path: Path
) -> None:
    """A checkout holding the packaging below a subdirectory, as a monorepo might."""
    repo = tmp_path / "repo"
    copy_debian(LINUX_61, repo / "packaging/linux")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Import linux 6.1.176-1 packaging")
    add_alpha_flavour(repo / "packaging/linux", "alpha-legacy")
    git(repo, "commit", "-q", "-am", "alpha: add alpha-legacy flavour")

    for source in ("packaging/linux", "packaging/linux/debian"):
        assert "alpha-legacy" in flavours(kbo, Path(source), "--rev", "HEAD", cwd=repo)
        assert "alpha-legacy" not in flavours(kbo, Path(source), "--rev", "HEAD~1", cwd=repo)
    (repo / "packaging/linux/debian/config/alpha/defines").write_text("[build\n")
    git(repo, "commit", "-q", "-am", "alpha: break defines")
    result = kbo("matrix", "debian", "--rev", "HEAD", cwd=repo / "packaging/linux")
    assert result.returncode == 2
    assert result.stderr.startswith("kbo: HEAD:packaging/linux/debian/config/alpha/defines:")


def test_bare_repository_is_read_at_a_rev(
    kbo: RunKbo, packaging_repo: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "linux.git"
    git(tmp_path, "clone", "-q", "--bare", str(packaging_repo), str(bare))
    assert flavours(kbo, bare, "--rev", "main") == {"alpha-generic", "alpha-smp"}


def make_dsc(directory: Path, debian_tree: Path, *, name: str | None = None) -> Path:
    """A .dsc and its debian tarball, made the way dpkg-source would list them."""
    tarball = directory / "linux_6.1.176-1.debian.tar.gz"
    with tarfile.open(tarball, "w:gz", compresslevel=1) as tar:
        tar.add(debian_tree / "debian", arcname="debian")
    data = tarball.read_bytes()
    listed = name or tarball.name
    md5, sha256 = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()  # noqa: S324
    dsc = directory / "linux_6.1.176-1.dsc"
    dsc.write_text(
        "Format: 3.0 (quilt)\nSource: linux\nBinary: linux-doc\nArchitecture: any all\n"
        "Version: 6.1.176-1\nMaintainer: Debian Kernel Team <debian-kernel@lists.debian.org>\n"
        f"Checksums-Sha256:\n {sha256} {len(data)} {listed}\n"
        f"Files:\n {md5} {len(data)} {listed}\n"
    )
    return dsc


def test_dsc_source_unpacks_its_debian_tarball(kbo: RunKbo, tmp_path: Path) -> None:
    dsc = make_dsc(tmp_path, copy_debian(LINUX_61, tmp_path / "tree"))
    result = kbo("matrix", dsc, "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 50


def test_dsc_with_a_tampered_tarball_is_refused(kbo: RunKbo, tmp_path: Path) -> None:
    dsc = make_dsc(tmp_path, copy_debian(LINUX_61, tmp_path / "tree"))
    tarball = tmp_path / "linux_6.1.176-1.debian.tar.gz"
    data = bytearray(tarball.read_bytes())
    data[100] ^= 0xFF
    tarball.write_bytes(bytes(data))
    result = kbo("matrix", dsc)
    assert result.returncode == 2
    assert result.stderr == f"kbo: {dsc}: linux_6.1.176-1.debian.tar.gz: SHA-256 does not match\n"


def test_dsc_naming_a_file_outside_its_directory_is_refused(kbo: RunKbo, tmp_path: Path) -> None:
    dsc = make_dsc(
        tmp_path,
        copy_debian(LINUX_61, tmp_path / "tree"),
        name="../linux_6.1.176-1.debian.tar.gz",
    )
    result = kbo("matrix", dsc)
    assert result.returncode == 2
    assert "refusing file name '../linux_6.1.176-1.debian.tar.gz'" in result.stderr


def test_import_dsc_makes_a_repository_committed_as_the_changelog_entry(
    kbo: RunKbo, tmp_path: Path
) -> None:
    tree = copy_debian(LINUX_61, tmp_path / "tree")
    (tree / "debian/bin").mkdir()
    (tree / "debian/bin/gencontrol.py").write_text("#!/usr/bin/python3\n")
    (tree / "debian/bin/gencontrol.py").chmod(0o755)
    (tree / "debian/bin/debian_linux").symlink_to("../changelog")
    dsc = make_dsc(tmp_path, tree)
    result = kbo("import-dsc", dsc, tmp_path / "repo")
    assert result.returncode == 0, result.stderr
    repo = tmp_path / "repo"
    assert git(repo, "log", "--format=%an <%ae>|%s") == (
        "Ben Hutchings <benh@debian.org>|Import linux 6.1.176-1"
    )
    assert git(repo, "ls-files", "-s", "debian/bin").split("\n") == [
        line.format(
            *(
                git(repo, "rev-parse", f"HEAD:debian/bin/{n}")
                for n in ("debian_linux", "gencontrol.py")
            )
        )
        for line in (
            "120000 {0} 0\tdebian/bin/debian_linux",
            "100755 {1} 0\tdebian/bin/gencontrol.py",
        )
    ]
    again = kbo("import-dsc", dsc, tmp_path / "repo")
    assert (again.returncode, again.stderr) == (2, f"kbo: {repo}: exists and is not empty\n")


def test_import_dsc_refuses_a_symlink_out_of_debian(kbo: RunKbo, tmp_path: Path) -> None:
    tree = copy_debian(LINUX_61, tmp_path / "tree")
    (tree / "debian/escape").symlink_to("../../etc/passwd")
    dsc = make_dsc(tmp_path, tree)
    result = kbo("import-dsc", dsc, tmp_path / "repo")
    assert result.returncode == 2
    assert "refusing symlink debian/escape -> ../../etc/passwd: leaves debian/" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "linux_6.1.176-1.debian.tar.gz",
        "linux_6.1.176-1.dsc",
        "tree",
    ]  # no repository, no half-made one


def test_a_dsc_without_its_tarball_beside_it_reads_it_from_the_mirror(tmp_path: Path) -> None:
    """As kbo import-dsc does: the pool of the configured mirror, checked against the .dsc."""
    dsc = make_dsc(tmp_path, copy_debian(LINUX_61, tmp_path / "tree"))
    pool = tmp_path / "mirror" / "pool" / "main" / "l" / "linux"
    pool.mkdir(parents=True)
    (tmp_path / "linux_6.1.176-1.debian.tar.gz").rename(pool / "linux_6.1.176-1.debian.tar.gz")
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "mirror")
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    env = os.environ | {
        "KBO_CONFIG": "/dev/null",
        "KBO_MIRROR": f"http://127.0.0.1:{httpd.server_address[1]}",
        "KBO_STATE_DIR": str(tmp_path / "state"),
    }
    try:
        result = subprocess.run(
            [str(KBO), "matrix", str(dsc), "--json"], capture_output=True, text=True, env=env
        )
    finally:
        httpd.shutdown()
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 50


def test_rev_refuses_a_blob_over_64_mib_before_reading_it(
    kbo: RunKbo, packaging_repo: Path
) -> None:
    """Before: the coordinator read every defines file whole, whatever its size."""
    with (packaging_repo / "debian/config/alpha/defines").open("ab") as f:
        f.write(bytes(64 << 20))  # little in git, 64 MiB read
    git(packaging_repo, "commit", "-q", "-am", "alpha: a huge defines")
    commit = git(packaging_repo, "rev-parse", "HEAD")
    result = kbo("matrix", packaging_repo, "--rev", "HEAD")
    assert result.returncode == 2
    size = (packaging_repo / "debian/config/alpha/defines").stat().st_size
    assert result.stderr == (
        f"kbo: {packaging_repo} at {commit[:12]}: debian/config/alpha/defines is {size} "
        "bytes; kbo reads no file over 64 MiB\n"
    )


def test_the_size_is_checked_before_git_cat_file_reads_anything(
    packaging_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbo.errors import UserError
    from kbo.packaging import repository, tree

    monkeypatch.setattr(repository, "MAX_BLOB", 4096, raising=False)
    (packaging_repo / "debian/changelog").write_bytes(bytes(8192))
    git(packaging_repo, "commit", "-q", "-am", "a large changelog")
    calls: list[tuple[str, ...]] = []
    real_git = repository._git

    def recording_git(repo: Path, *args: str, stdin: bytes | None = None) -> object:
        calls.append(args)
        return real_git(repo, *args, stdin=stdin)

    monkeypatch.setattr(repository, "_git", recording_git)
    with pytest.raises(UserError, match="debian/changelog is 8192 bytes; kbo reads no file"):
        tree.git_tree(packaging_repo, "HEAD")
    assert not [args for args in calls if args[0] == "cat-file"]


def test_rev_refuses_files_too_large_together(
    packaging_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbo.errors import UserError
    from kbo.packaging import repository, tree

    monkeypatch.setattr(repository, "MAX_BLOBS", 1 << 20)
    for arch in ("alpha", "hppa", "mips"):
        with (packaging_repo / f"debian/config/{arch}/defines").open("ab") as f:
            f.write(b"\n" * (512 << 10))
    git(packaging_repo, "commit", "-q", "-am", "defines: each large")
    with pytest.raises(
        UserError, match=r"the files kbo reads below debian/ take \d+ bytes, over 1 MiB$"
    ):
        tree.git_tree(packaging_repo, "HEAD")
