"""What a build writes cannot exhaust the worker: its log is capped, the log is read in
bounded pieces, and its packages are copied out only up to the job's disk limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kbo import recipes
from kbo.config import Config
from kbo.workers import runner, sandbox
from kbo.workers.build import BuildAttempt, Workspace


def test_endless_output_stops_the_command_at_the_log_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "MAX_LOG_BYTES", 1 << 20)
    log = tmp_path / "job.log"
    with log.open("wb") as out:
        out.write(b"earlier stages\n")
        result = runner.run(["yes", "endless"], log=out, timeout=8, no_output_timeout=8)
    assert result.timed_out == "wrote more than 1 MiB of log"
    assert log.stat().st_size < (1 << 20) + (1 << 17)
    assert log.read_bytes().endswith(b"kbo: killed: wrote more than 1 MiB of log\n")


def test_the_first_error_names_the_step_that_wrote_too_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "MAX_LOG_BYTES", 1 << 20)
    monkeypatch.setattr(sandbox, "wrap", lambda argv, spec: list(argv))  # no bwrap needed
    recipe = recipes.Recipe(
        name="flood",
        timeout=8,
        steps=(
            recipes.Step(name="flood", argv=("yes", "error: not the first error")),
            recipes.Step(name="never", argv=("false",)),
        ),
    )
    config = Config(state_dir=str(tmp_path))
    attempt = BuildAttempt(None, config, 1, "token", "worker")  # type: ignore[arg-type]
    values: Any = {}
    (tmp_path / "job").mkdir()
    with (tmp_path / "job.log").open("wb") as out:
        where = Workspace(tmp_path / "job", out)
        failure = attempt._steps(values, recipe, sandbox.Spec(etc=""), where, "native")
    assert failure == "step flood wrote more than 1 MiB of log"
    assert b"step never" not in (tmp_path / "job.log").read_bytes()
