"""What a build writes cannot exhaust the worker: its log is capped, the log is read in
bounded pieces, and its packages are copied out only up to the job's disk limit."""

from __future__ import annotations

import io
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from kbo import recipes
from kbo.config import Config
from kbo.workers import artifacts, runner, sandbox
from kbo.workers.build import BuildAttempt, Workspace
from kbo.workers.first_error import MAX_LENGTH, PIECE, first_error_in


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


def test_a_line_of_many_megabytes_is_not_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first error is looked for in bounded memory, whatever a line's length."""
    monkeypatch.setattr(sandbox, "wrap", lambda argv, spec: list(argv))
    recipe = recipes.Recipe(
        name="fails",
        steps=(recipes.Step(name="fails", argv=("sh", "-c", "echo 'error: the real one'; false")),),
    )
    attempt = BuildAttempt(None, Config(state_dir=str(tmp_path)), 1, "t", "w")  # type: ignore[arg-type]
    values: Any = {}
    (tmp_path / "job").mkdir()
    with (tmp_path / "job.log").open("wb") as out:
        out.write(b"an earlier stage printed one line without end: ")
        out.truncate(256 << 20)  # sparse: no disk used
        out.seek(0, io.SEEK_END)
        out.write(b"\n")
        tracemalloc.start()
        try:
            failure = attempt._steps(
                values, recipe, sandbox.Spec(etc=""), Workspace(tmp_path / "job", out), "native"
            )
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert failure == "error: the real one"
    assert peak < 4 << 20


def test_only_the_start_of_an_over_long_line_counts(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_bytes(
        b"drivers/x.c:12:3: error: it starts well" + b" and goes on" * 100_000 + b"\n"
        b"make: *** [Makefile:1] Error 1\n"
    )
    found = first_error_in(log)
    assert found is not None and found.startswith("drivers/x.c:12:3: error: it starts well")
    assert len(found) == MAX_LENGTH and found.endswith("…")
    log.write_bytes(b"x" * 100_000 + b" error: in the part cut off\nmake: *** [all] Error 2\n")
    assert first_error_in(log) == "make: *** [all] Error 2"


def test_packages_are_copied_out_only_up_to_the_job_disk_limit(tmp_path: Path) -> None:
    """Sparse "packages" take no disk in the job directory, but their copies would."""
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    for name in ("a.buildinfo", "b.buildinfo", "c.buildinfo"):
        with (build_dir / name).open("wb") as f:
            f.truncate(400 << 10)
    store = tmp_path / "store"
    with pytest.raises(artifacts.TooMuchOutput, match=r"more than 1 MiB \(job_disk_gb\)"):
        artifacts.collect(build_dir, store, 1 << 20)
    assert not store.exists()  # nothing half copied is kept
    assert len(artifacts.collect(build_dir, store, 1200 << 10)) == 3


@pytest.mark.parametrize("word", ["Kconfig", " ld: ", " ld.bfd: "])
def test_no_line_costs_the_error_patterns_more_than_one_pass(tmp_path: Path, word: str) -> None:
    """A line of 64 KiB repeating what a pattern looks for took seconds (a log holds
    16,384 of them: hours of the worker's time after the build's own time was up)."""
    log = tmp_path / "job.log"
    log.write_bytes((word * (PIECE // len(word)))[: PIECE - 1].encode() + b"\n")
    started = time.monotonic()
    assert first_error_in(log) is None
    assert time.monotonic() - started < 0.2


@pytest.mark.parametrize(
    "line",
    [
        "arch/alpha/Kconfig:12: syntax error",
        "drivers/Kconfig.debug:3: warning: unknown option",
        "scripts/x.c:3: error in Kconfig symbol",
        "/usr/bin/ld: vmlinux.o: error adding symbols",
        "alpha-linux-gnu-ld.bfd: final link failed: error",
        "x ld: one ld: two error",
    ],
)
def test_the_error_patterns_still_find_their_lines(tmp_path: Path, line: str) -> None:
    log = tmp_path / "job.log"
    log.write_text(f"noise\n{line}\nmake: *** [all] Error 2\n")
    assert first_error_in(log) == line


def test_a_flood_of_empty_package_files_is_refused_before_the_report_outgrows_the_broker(
    tmp_path: Path,
) -> None:
    """Empty files take no disk; 100,000 of them made a report of 66 MiB, which embedded
    mode's broker drops (64 MiB at most): the result was lost."""
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    for i in range(artifacts.MAX_ARTIFACTS + 1):
        (build_dir / f"{i:05d}{'x' * 200}.changes").touch()
    store = tmp_path / "store"
    with pytest.raises(artifacts.TooMuchOutput, match=r"left 1001 packages .* more than 1000"):
        artifacts.collect(build_dir, store, 1 << 30)
    assert not store.exists()
    (build_dir / f"00000{'x' * 200}.changes").unlink()
    assert len(artifacts.collect(build_dir, store, 1 << 30)) == artifacts.MAX_ARTIFACTS
