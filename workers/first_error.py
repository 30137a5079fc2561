"""Find the first line in a build log that says what broke, with file:line where known.

Precise errors (compiler, linker, Kconfig, quilt, dpkg) win over make's summary
line, which only says that something failed earlier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

MAX_LENGTH = 400
# The log is read in pieces of this size, and a longer line is cut to its first piece:
# the build writes the log, and one line of it may be gigabytes long.
PIECE = 64 << 10

# The build writes every line these meet, so none may backtrack over a line more than
# once: "KconfigKconfig..." or " ld: ld: ..." took the old patterns seconds per line. The
# atomic groups hold a match to the first "ld: " and the last "Kconfig" of the word,
# which is where any match can be found.
PRECISE = [
    re.compile(r"^(?P<where>[^\s:]+:\d+(?::\d+)?): (?:fatal )?error: .*"),  # gcc, clang
    re.compile(
        r"^(?P<where>[^\s:]+:\d+): .*Kconfig.*|^(?P<kconfig>(?>[^\s:]*Kconfig)[^\s:]*:\d+): .*"
    ),
    re.compile(
        r".*: undefined reference to .*|^(?>.*?\bld(?:\.bfd)?: ).*error.*|^collect2: error: .*"
    ),
    re.compile(r"^Patch (?P<patch>\S+) does not apply.*|^Applying patch .* FAILED.*"),
    re.compile(r"^dpkg-[a-z]+: error: .*|^E: .*"),
    re.compile(r"^(?:ERROR|Error|error): .*"),
    re.compile(r".*\bNo space left on device\b.*"),
]
SUMMARY = re.compile(r"^make(?:\[\d+\])?: \*\*\* .*")


def first_error_in(log: str | Path) -> str | None:
    """The first error in the log file ``log``, read in bounded memory."""
    with open(log, "rb") as f:
        return first_error(_lines(f))


def _lines(f: BinaryIO) -> Iterator[str]:
    """The lines of ``f``, each cut to its first ``PIECE`` bytes (the rest skipped)."""
    while line := f.readline(PIECE):
        if not line.endswith(b"\n"):
            while (rest := f.readline(PIECE)) and not rest.endswith(b"\n"):
                pass
        yield line.decode("utf-8", errors="replace")


def first_error(lines: Iterable[str]) -> str | None:
    summary = None
    for raw in lines:
        line = raw.rstrip("\n")
        if any(p.match(line) for p in PRECISE):
            return _clip(line)
        if summary is None and SUMMARY.match(line):
            summary = line
    return _clip(summary) if summary else None


def _clip(line: str) -> str:
    line = "".join(ch if ch.isprintable() else "?" for ch in line.strip())
    return line if len(line) <= MAX_LENGTH else line[: MAX_LENGTH - 1] + "…"
