"""Text kbo takes from outside (arguments, environment, files) is UTF-8 and one line.

Python decodes arguments and environment variables with ``surrogateescape``: a byte that
is not UTF-8 becomes a lone surrogate, which fails later, far from where it came in.
These helpers find it at the door and show it readably.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def is_utf8(value: str) -> bool:
    """False when ``value`` came from bytes that are not UTF-8."""
    return _SURROGATE.search(value) is None


def escaped(value: str) -> str:
    """``value`` as printable ASCII, its undecodable bytes as ``\\xff``: for messages."""
    return repr(value.encode("utf-8", "surrogateescape")).removeprefix("b")


def one_line(text: str) -> str:
    """A message fit for one line of stderr: line breaks become spaces."""
    return _LINE_BREAKS.sub(" ", text.strip())
