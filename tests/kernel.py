"""The real linux 6.1.176-1 packaging for build tests, checked against the fixture .dsc.

Downloads are cached in $KBO_TEST_CACHE (default /var/tmp/kbo-test-cache), so a second
run on the same machine fetches nothing. Commits carry fixed dates and authors: the
same tree gives the same commit, and kbo's prepared-tree cache hits across runs.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import tarfile
from pathlib import Path

from kbo.config import Config
from kbo.packaging import download
from kbo.packaging.dsc import read_dsc
from kbo.packaging.import_dsc import import_dsc
from tests.conftest import FIXTURES

CACHE = Path(os.environ.get("KBO_TEST_CACHE", "/var/tmp/kbo-test-cache"))
DSC = FIXTURES / "dsc" / "linux_6.1.176-1.dsc"
POOL = "http://deb.debian.org/debian/pool/main/l/linux"
UPSTREAM = "6.1.176"
FIXED_DATE = "2026-07-02T15:50:42+0200"


def downloaded(name: str) -> Path:
    expected = read_dsc(DSC).file(re.compile(re.escape(name)))
    assert expected is not None, name
    return download.fetch(f"{POOL}/{name}", name, CACHE / "downloads", expected)


def commit_all(repo: Path, message: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Debian Kernel Team",
        "GIT_AUTHOR_EMAIL": "kernel@example.org",
        "GIT_COMMITTER_NAME": "Debian Kernel Team",
        "GIT_COMMITTER_EMAIL": "kernel@example.org",
        "GIT_AUTHOR_DATE": FIXED_DATE,
        "GIT_COMMITTER_DATE": FIXED_DATE,
        "HOME": str(repo),
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", message], check=True, env=env)
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def packaging_repo(dest: Path) -> Path:
    """A git repository holding the complete debian/ of linux 6.1.176-1 (kbo import-dsc)."""
    import_dsc(DSC, dest, "main", Config(cache_dir=str(CACHE)))
    return dest


def upstream_file(path: str) -> str:
    """One file of the upstream tree, read from the orig tarball in a single pass."""
    with tarfile.open(downloaded(f"linux_{UPSTREAM}.orig.tar.xz"), "r|xz") as tar:
        for member in tar:
            if member.name == f"linux-{UPSTREAM}/{path}":
                data = tar.extractfile(member)
                assert data is not None
                return data.read().decode()
    raise FileNotFoundError(path)


def add_breaking_patch(repo: Path, path: str, after_line: int, line: str) -> str:
    """Commit a quilt patch (applied last) that inserts ``line`` into ``path``."""
    old = upstream_file(path).splitlines(keepends=True)
    new = [*old[:after_line], line + "\n", *old[after_line:]]
    patch = "".join(difflib.unified_diff(old, new, f"a/{path}", f"b/{path}"))
    (repo / "debian/patches/kbo-test").mkdir(parents=True, exist_ok=True)
    (repo / "debian/patches/kbo-test/break.patch").write_text(
        f"From: kbo tests\nSubject: break {path}\n\n{patch}"
    )
    with (repo / "debian/patches/series").open("a") as series:
        series.write("kbo-test/break.patch\n")
    return commit_all(repo, f"Break {path}")
