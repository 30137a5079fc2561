"""The runner ends a step that timed out at once when it obeys SIGTERM, and by SIGKILL
when it does not; nothing of its process group survives."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from kbo.workers import runner


def run(argv: list[str], tmp_path: Path, timeout: float) -> runner.RunResult:
    with (tmp_path / "step.log").open("wb") as out:
        return runner.run(argv, log=out, timeout=timeout, no_output_timeout=60)


def test_a_step_that_exits_on_term_ends_at_once_after_its_timeout(tmp_path: Path) -> None:
    # One process: an orphaned child's zombie lingers until PID 1 reaps it, which the
    # sandbox's PID namespace does at once but a test host's init may not.
    result = run(["sleep", "2718"], tmp_path, timeout=1)
    assert result.timed_out == "timed out after 1 s"
    # The select loop notices the timeout within half a second; then TERM ends it all.
    assert result.duration < 1 + 1.5 < 1 + runner.KILL_GRACE_SECONDS
    assert subprocess.run(["pgrep", "-f", "sleep 2718"], check=False).returncode == 1


def test_a_step_that_ignores_term_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "KILL_GRACE_SECONDS", 1.0)
    result = run(["sh", "-c", "trap '' TERM; sleep 2719 & sleep 2719"], tmp_path, timeout=1)
    assert result.timed_out == "timed out after 1 s"
    assert 1 + 1.0 <= result.duration < 1 + 1.0 + 1.5
    assert subprocess.run(["pgrep", "-f", "sleep 2719"], check=False).returncode == 1


def test_a_command_that_closes_its_output_and_runs_on_still_times_out(tmp_path: Path) -> None:
    """The end of its output was taken for its end: the runner then waited for it with no
    timeout at all."""
    started = time.monotonic()
    with (tmp_path / "log").open("wb") as log:
        result = runner.run(
            ["sh", "-c", "exec >&- 2>&-; sleep 30"], log=log, timeout=2, no_output_timeout=60
        )
    assert result.timed_out == "timed out after 2 s"
    assert time.monotonic() - started < 10


def test_a_command_that_closes_its_output_then_exits_ends_at_its_exit(tmp_path: Path) -> None:
    """Its output ends before it does: it is over when it exits, not a grace period later
    (the grace is for children still holding the pipe, and here nobody holds it). Every
    step, noop jobs' too, paid 1.5 s whenever its exit came just after its output's end."""
    with (tmp_path / "log").open("wb") as log:
        result = runner.run(
            ["sh", "-c", "exec >&- 2>&-; sleep 0.2"], log=log, timeout=60, no_output_timeout=60
        )
    assert result.ok
    assert result.duration < 0.6
