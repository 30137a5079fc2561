"""Text kbo takes from outside (arguments, environment, files) is UTF-8 and one line.

Python decodes arguments and environment variables with ``surrogateescape``: a byte that
is not UTF-8 becomes a lone surrogate, which fails later, far from where it came in.
These helpers find it at the door and show it readably.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

# Debian arch, featureset and flavour names, and recipe names: they become make targets,
# queue names and file names, so they keep to the shape Debian uses and nothing else.
NAME = "[a-z0-9][a-z0-9.+-]*"

_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def is_utf8(value: str) -> bool:
    """False when ``value`` came from bytes that are not UTF-8."""
    return _SURROGATE.search(value) is None


def escaped(value: str) -> str:
    """``value`` as printable ASCII, its undecodable bytes as ``\\xff``: for messages."""
    return repr(value.encode("utf-8", "surrogateescape")).removeprefix("b")


def in_units(size: int) -> str:
    """A byte count for a message, rounded down to the largest binary unit: "1 GiB"."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"


def one_line(text: str) -> str:
    """A message fit for one line of stderr: line breaks become spaces."""
    return _LINE_BREAKS.sub(" ", text.strip())


# A password in a URL, to the last "@" of its word (passwords may hold "/", "#", ":").
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)[^\s]*@")
# The same in a malformed URL ("redis//:secret@host", "redis:/:secret@host").
_LOOSE_PASSWORD = re.compile(r"(:)[^\s:@/]+@")


def mask_passwords(text: str) -> str:
    """``text`` with every password inside a URL replaced by ``**``: for anything kbo
    prints, whatever the URL's shape."""
    return _LOOSE_PASSWORD.sub(r"\1**@", _URL_PASSWORD.sub(r"\1**@", text))


def read_small_file(path: Path, limit: int = 1 << 20) -> str:
    """A small UTF-8 file a user named (a config, a recipe): only a regular file, at most
    ``limit`` bytes. A FIFO, a device or /dev/zero would otherwise block or fill memory.
    Raises OSError (the file cannot be read), ValueError (not regular, too big, not text).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO does not block the open
    try:
        info = os.fstat(fd)
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == os.stat(os.devnull).st_rdev:
            return ""  # --config /dev/null: no settings, on purpose
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > limit:
            raise ValueError(f"larger than {limit} bytes")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data.decode("utf-8")  # UnicodeDecodeError is a ValueError
