"""The log lines a failure mail quotes: read from the end of the log, in bounded memory."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

from kbo.orchestrator.mail import compose


def write_log(path: Path, megabytes: int) -> None:
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(b"== kbo stage build ==\nthe very first line\n")
        line = b"  CC      drivers/net/ethernet/some/driver.o " + b"x" * 40 + b"\n"
        block = line * ((1 << 20) // len(line))
        for _ in range(megabytes):
            f.write(block)
        f.write(b"drivers/x.c:1:1: error: boom\nkbo: failed in 12 s\n")


def test_a_failure_mail_reads_a_large_log_in_bounded_memory(tmp_path: Path) -> None:
    log = tmp_path / "1.log.gz"
    write_log(log, 32)
    tracemalloc.start()
    try:
        lines = compose.read_log(str(log))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20, f"reading the log peaked at {peak >> 20} MiB"
    assert lines[-2:] == ["drivers/x.c:1:1: error: boom", "kbo: failed in 12 s"]
    assert "the very first line" not in lines
    assert lines[0].startswith("[... the log's first ")
    assert sum(len(line) + 1 for line in lines[1:]) <= 4 << 20


def test_a_small_log_is_read_whole(tmp_path: Path) -> None:
    log = tmp_path / "1.log.gz"
    log.write_bytes(gzip.compress(b"first\n\x1b[31mred\n"))
    assert compose.read_log(str(log)) == ["first", "?[31mred"]


def test_a_log_that_is_not_gzip_says_so_in_the_mail(tmp_path: Path) -> None:
    log = tmp_path / "1.log.gz"
    log.write_bytes(gzip.compress(b"x" * 100_000)[:-500] + b"garbage")
    (line,) = compose.read_log(str(log))
    assert line.startswith(f"[the log {log} cannot be read: ")
