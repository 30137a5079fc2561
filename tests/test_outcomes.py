"""A build's outcome says whose fault its end was: the commit's (failed), the host's or a
service's (infra-error), or a host without the Build-Depends (dep-wait). The worker tells
them apart by the class of what was raised (``outcome_of``)."""

from __future__ import annotations

import errno
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kbo.config import Config
from kbo.errors import InfraError, UserError
from kbo.packaging import download
from kbo.workers import artifacts, build, job_files, prepared_tree
from kbo.workers.executors import ExecutorError
from kbo.workers.outcomes import MissingBuildDepends, outcome_of
from tests.services import free_port


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (prepared_tree.PrepareError("preparing the source: make -f debian/rules orig"), "failed"),
        (job_files.UnsafeFile("linux.deb is a symlink, not a regular file"), "failed"),
        (artifacts.TooMuchOutput("the build's packages come to more than 1 GiB"), "failed"),
        (artifacts.BadPackage("linux.deb is not a valid Debian package"), "failed"),
        (UserError("not found on the mirror"), "failed"),
        (InfraError("download failed: 503 Server Error"), "infra-error"),
        (ExecutorError("missing cross toolchain alpha-linux-gnu-gcc"), "infra-error"),
        (OSError(errno.ENOSPC, "No space left on device"), "infra-error"),
        (KeyError("Package"), "infra-error"),
        (subprocess.CalledProcessError(128, ["git", "archive"]), "infra-error"),
        (MissingBuildDepends(["gcc-12-alpha-linux-gnu"]), "dep-wait"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v,
)
def test_only_the_commits_own_faults_fail_the_build(error: BaseException, outcome: str) -> None:
    assert outcome_of(error) == outcome


class Unavailable(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(503, "mirror sync in progress")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror_503() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("down", ["503", "closed port"])
def test_a_mirror_that_is_down_is_the_hosts_fault(
    tmp_path: Path, mirror_503: str, down: str
) -> None:
    mirror = mirror_503 if down == "503" else f"http://127.0.0.1:{free_port()}"
    url = download.pool_url(mirror, "linux", "linux_6.1.176.orig.tar.xz")
    with pytest.raises(Exception) as raised:
        download.fetch(url, "linux_6.1.176.orig.tar.xz", tmp_path, None)
    assert "download failed" in str(raised.value)
    assert outcome_of(raised.value) == "infra-error"


JOB = {
    "source": "/srv/linux",
    "commit_sha": "c" * 40,
    "recipe": "full-build",
    "arch": "amd64",
    "featureset": "none",
    "flavour": "amd64",
    "kernel_arch": None,
    "attempt": 1,
}
CONTROL = """Source: linux
Build-Depends: debhelper-compat (= 12), kbo-test-absent-compiler [amd64]

Package: linux-doc
Architecture: all
"""


def test_a_host_lacking_the_build_depends_reports_dep_wait_naming_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the worker's real stages: only the prepared tree (orig tarball, `debian/rules
    orig`, which needs a real kernel) is stood in for by a tree with a debian/control."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "full-build.toml").write_text(
        'needs_source = true\nrequire_build_depends = true\nexecutors = ["none"]\n'
        '[[step]]\nargv = ["true"]\n'
    )
    tree = prepared_tree.Prepared(tmp_path / "tree", "6.1.176-1", "6.1.176")
    (tree.src / "debian").mkdir(parents=True)
    (tree.src / "debian" / "control").write_text(CONTROL)
    monkeypatch.setattr(prepared_tree, "prepare", lambda *args: tree)
    monkeypatch.setitem(build.EXECUTORS_BY_ARCH, "amd64", ("none",))
    sent: list[tuple[Any, ...]] = []
    reply = {"accepted": True, "reason": "", "lease_seconds": 300, "job": JOB}
    monkeypatch.setattr(build.messaging, "call", lambda *args, **kwargs: reply)
    monkeypatch.setattr(build.messaging, "send", lambda app, *args, **kwargs: sent.append(args))
    monkeypatch.setattr(
        build.messaging,
        "call_until_answered",
        lambda app, *args, **kwargs: (sent.append(args), (True, {"accepted": True}))[1],
    )
    config = Config(state_dir=str(tmp_path / "state"), recipe_dirs=(str(recipes),))
    build.BuildAttempt(None, config, 7, "token", "w").run()  # type: ignore[arg-type]
    ((*_, result),) = [m for m in sent if m[0] == "kbo.finished"]
    assert result["outcome"] == "dep-wait"
    assert result["first_error"] == "missing Build-Depends: kbo-test-absent-compiler"
