"""Bad package data fails the job, and a broken host ends it infra-error, each with a
clear first error, and the worker stays up to build the next one."""

from __future__ import annotations

import functools
import hashlib
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git
from tests.services import Cluster, RedisServer

RECIPES = {
    "prepare-only": 'needs_source = true\nexecutors = ["none"]\n',
    "needs-cross": 'executors = ["cross"]\n',
    "needs-qemu": 'executors = ["qemu"]\n',
    "bad-executor": 'executors = ["chroot"]\n',
    "fill-disk": 'executors = ["none"]\n',
}
ORIG = b"not really a kernel\n" * 1000


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[str]:
    """Debian's pool layout on a real HTTP server on loopback."""
    pool = tmp_path / "mirror" / "pool/main/l/linux"
    pool.mkdir(parents=True)
    (pool / "linux_6.1.176.orig.tar.xz").write_bytes(ORIG)
    handler = functools.partial(_QuietHandler, directory=str(tmp_path / "mirror"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def write_dscs(directory: Path) -> None:
    """-1 vouches for the orig tarball with a wrong checksum; -2 names a file outside."""
    directory.mkdir()
    size, wrong = len(ORIG), hashlib.sha256(b"something else").hexdigest()
    for revision, name in (
        ("1", "linux_6.1.176.orig.tar.xz"),
        ("2", "../linux_6.1.176.orig.tar.xz"),
    ):
        (directory / f"linux_6.1.176-{revision}.dsc").write_text(
            f"Format: 3.0 (quilt)\nSource: linux\nVersion: 6.1.176-{revision}\n"
            f"Checksums-Sha256:\n {wrong} {size} {name}\n"
            f"Files:\n {'0' * 32} {size} {name}\n"
        )


@pytest.fixture
def broken(tmp_path: Path, mirror: str) -> Iterator[tuple[Cluster, RedisServer]]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    recipes = tmp_path / "bad-recipes"
    recipes.mkdir()
    for name, head in RECIPES.items():
        argv = (
            '["dd", "if=/dev/zero", "of=/build/fill", "bs=1M", "count=8"]'
            if name == "fill-disk"
            else '["true"]'
        )
        (recipes / f"{name}.toml").write_text(f'scope = "arch"\n{head}[[step]]\nargv = {argv}\n')
    write_dscs(tmp_path / "dscs")
    cluster = Cluster(
        tmp_path / "kbo",
        broker_url=server.url,
        mirror=mirror,
        recipe_dirs=[str(recipes)],
        dsc_dirs=[str(tmp_path / "dscs")],
        cache_dir=str(tmp_path / "cache"),
        infra_retries=0,
    )
    builds = tmp_path / "kbo" / "state" / "worker" / "builds"
    builds.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(builds)], check=True)
    try:
        cluster.start_coordinator()
        cluster.start_worker("w-broken", "arm64,m68k", "--unchecked")
        yield cluster, server
    finally:
        cluster.stop_all()
        subprocess.run(["umount", "-l", str(builds)], check=False)
        server.stop()


def failure(cluster: Cluster, *args: str, outcome: str = "failed") -> str:
    run = cluster.submit(*args, "--wait", timeout=300)
    assert run["jobs"] and {job["state"] for job in run["jobs"]} == {outcome}, run
    errors = {job["first_error"] for job in run["jobs"]}
    assert len(errors) == 1, errors
    error: str = errors.pop()
    still_up = cluster.submit(
        "--recipe", "noop", "--arch", "arm64", "--rev", run["commit_sha"], "--wait", timeout=300
    )
    assert still_up["succeeded"] is True, "the worker did not survive"
    return error


def test_bad_input_fails_the_job_and_spares_the_worker(broken: tuple[Cluster, RedisServer]) -> None:
    cluster, _ = broken
    error = failure(cluster, "--recipe", "prepare-only", "--arch", "arm64")
    assert "linux_6.1.176.orig.tar.xz: SHA-256" in error and "does not match the .dsc" in error

    changelog = cluster.repo / "debian/changelog"
    changelog.write_text(changelog.read_text().replace("6.1.176-1)", "6.1.176-2)", 1))
    git(cluster.repo, "commit", "-q", "-am", "Upload -2")
    error = failure(cluster, "--recipe", "prepare-only", "--arch", "arm64")
    assert "refusing file name '../linux_6.1.176.orig.tar.xz'" in error

    error = failure(cluster, "--recipe", "needs-cross", "--arch", "arm64", outcome="infra-error")
    assert error.startswith("missing cross toolchain aarch64-linux-gnu-gcc (apt-get install")

    handler = Path("/proc/sys/fs/binfmt_misc/qemu-m68k")
    handler.write_text("0")
    try:
        error = failure(cluster, "--recipe", "needs-qemu", "--arch", "m68k", outcome="infra-error")
    finally:
        handler.write_text("1")
    assert error == "binfmt handler qemu-m68k is disabled"

    assert "No space left on device" in failure(cluster, "--recipe", "fill-disk", "--arch", "arm64")
    builds = cluster.tmp / "state" / "worker" / "builds"
    assert [p for p in builds.iterdir() if p.name != "lost+found"] == []  # cleaned up
    # A bad recipe builds nothing: the coordinator refuses it before recording a run.
    refused = cluster.kbo("submit", "--recipe", "bad-executor", "--arch", "arm64")
    assert refused.returncode == 2, refused.stderr
    assert "executors: unknown executor 'chroot'" in refused.stderr
