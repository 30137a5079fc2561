"""Every build ends in a report: whatever goes wrong in it, the coordinator hears that
the attempt ended and why, in one line, rather than waiting for its lease to lapse. What
kbo did not expect is the host's fault (infra-error), never the commit's."""

from __future__ import annotations

import base64
import errno
import gzip
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kbo import recipes
from kbo.config import Config
from kbo.workers import build

JOB = {
    "source": "/srv/linux",
    "commit_sha": "c" * 40,
    "recipe": "noop",
    "arch": "amd64",
    "featureset": "none",
    "flavour": "amd64",
    "kernel_arch": None,
    "attempt": 1,
}


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """A worker whose coordinator accepts the claim; the messages it sends."""
    sent: list[tuple[Any, ...]] = []
    reply = {"accepted": True, "reason": "", "lease_seconds": 300, "job": JOB}
    monkeypatch.setattr(build.messaging, "call", lambda *args, **kwargs: reply)
    monkeypatch.setattr(build.messaging, "send", lambda app, *args, **kwargs: sent.append(args))
    monkeypatch.setattr(build.messaging, "call_until_answered", _answered(sent))
    return sent


def _answered(sent: list[tuple[Any, ...]]) -> Any:
    """The report, kept in ``sent`` and accepted at once."""

    def report(app: object, *args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
        sent.append(args)
        return True, {"accepted": True, "reason": ""}

    return report


def attempt(tmp_path: Path) -> build.BuildAttempt:
    return build.BuildAttempt(None, Config(state_dir=str(tmp_path)), 7, "token", "w")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            subprocess.CalledProcessError(128, ["git", "archive"]),
            "internal error: CalledProcessError: Command '['git', 'archive']' returned "
            "non-zero exit status 128.",
        ),
        (tarfile.ReadError("bad\nheader"), "internal error: ReadError: bad header"),
        (KeyError("Package"), "internal error: KeyError: 'Package'"),
    ],
    ids=["CalledProcessError", "TarError", "KeyError"],
)
def test_any_exception_in_a_stage_ends_in_an_infra_error_report(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    worker: list[tuple[Any, ...]],
    error: Exception,
    says: str,
) -> None:
    def load(*args: object) -> recipes.Recipe:
        raise error

    monkeypatch.setattr(recipes, "load", load)
    attempt(tmp_path).run()
    ((_, attempt_id, token, result),) = [m for m in worker if m[0] == "kbo.finished"]
    assert (attempt_id, token) == (7, "token")
    assert result["outcome"] == "infra-error"
    assert result["first_error"] == says
    log = gzip.decompress(base64.b64decode(result["log_gz"])).decode()
    assert f"kbo: {says}\n" in log
    assert not list((tmp_path / "worker" / "builds").iterdir())  # cleaned up all the same


def test_a_log_that_cannot_be_shipped_leaves_a_report_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker: list[tuple[Any, ...]]
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def load(*args: object) -> recipes.Recipe:
        raise KeyError("Package")

    monkeypatch.setattr(recipes, "load", load)
    monkeypatch.setattr(build.gzip, "open", full)
    attempt(tmp_path).run()
    ((*_, result),) = [m for m in worker if m[0] == "kbo.finished"]
    assert result["outcome"] == "infra-error"
    assert result["first_error"] == "internal error: KeyError: 'Package'"
    assert "log_gz" not in result and "log_path" not in result


def test_a_log_that_cannot_be_opened_leaves_a_report_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker: list[tuple[Any, ...]]
) -> None:
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "logs").write_text("not a directory")
    attempt(tmp_path).run()
    ((*_, result),) = [m for m in worker if m[0] == "kbo.finished"]
    assert result["outcome"] == "infra-error"
    assert result["first_error"].startswith("[Errno 20] Not a directory: ")
