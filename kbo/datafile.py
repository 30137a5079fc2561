"""kbo's TOML data files (``recipes/*.toml``, ``arches/*.toml``) checked against a schema.

Each kind of file declares its schema once, as a msgspec ``Struct`` (the way
``kbo.config`` declares the settings). A file is converted with ``strict=True``, so a
string is never taken for a list nor ``"60"`` for a number, and a mistake becomes one
line naming the file and the key, in the words ``kbo config`` uses for settings:
``recipes/x.toml: timeout must be a whole number of at least 1, not '60'``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from kbo.config import describe as describe_setting
from kbo.errors import UserError
from kbo.text import read_small_file

T = TypeVar("T")
_ERROR = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_SEGMENT = re.compile(r"\.(\w+)|\[(\d+)\]")


def read(path: Path, where: str) -> dict[str, Any]:
    """The file's TOML table; an unreadable or malformed file is a user error at ``where``."""
    try:
        return tomllib.loads(read_small_file(path))
    except FileNotFoundError:
        raise UserError("no such file", where) from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"malformed TOML: {e}", where) from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read: {e}", where) from None


def convert(data: dict[str, Any], schema: type[T], where: str, **given: Any) -> T:
    """``data`` as a ``schema``; ``given`` fills the fields that are not keys of the file
    (such as the name, which is the file's), and the file may not set them."""
    for key in given:
        if key in data:
            raise UserError(f"unknown key {key!r}", where)
    try:
        return msgspec.convert(data | given, schema, strict=True)
    except msgspec.ValidationError as e:
        raise UserError(_explain(str(e), data, schema, set(given)), where) from None


def describe(kind: msgspec.inspect.Type) -> str:
    """What a key accepts, in words: "a list of strings", "true or false", "a table"."""
    if isinstance(kind, msgspec.inspect.Metadata):
        kind = kind.type
    if isinstance(kind, msgspec.inspect.UnionType):  # "x: str | None": None is no TOML value
        kinds = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
        return " or ".join(describe(t) for t in kinds)
    if isinstance(kind, msgspec.inspect.BoolType):
        return "true or false"
    if isinstance(kind, msgspec.inspect.StructType):
        return "a table"
    if isinstance(kind, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
        items = _bare(kind.item_type)
        if isinstance(items, msgspec.inspect.StructType):
            each = "of tables"
        elif isinstance(items, msgspec.inspect.StrType):
            each = f"of strings matching {items.pattern}" if items.pattern else "of strings"
        else:
            each = f"each {describe(items)}"
        return ("a non-empty list " if kind.min_length else "a list ") + each
    return describe_setting(kind)


def _bare(kind: msgspec.inspect.Type) -> msgspec.inspect.Type:
    return kind.type if isinstance(kind, msgspec.inspect.Metadata) else kind


def _explain(message: str, data: dict[str, Any], schema: type[Any], given: set[str]) -> str:
    """msgspec's message, in the file's own terms: the key, what it accepts, what it got."""
    match = _ERROR.match(message)
    assert match is not None
    what, path = match["what"], match["path"] or ""
    segments: list[str | int] = [
        name if name else int(index) for name, index in _SEGMENT.findall(path)
    ]
    named = re.fullmatch(r"Object (contains unknown|missing required) field `(\w+)`", what)
    if named:  # the path is the table; the key is in the message
        table = _unwrapped(_walk(msgspec.inspect.type_info(schema), segments))
        prefix = f"{_key(segments)}: " if segments else ""
        fields = table.fields if isinstance(table, msgspec.inspect.StructType) else ()
        if named[1] == "missing required":
            field = next(f for f in fields if f.encode_name == named[2])
            return f"{prefix}{named[2]} is missing: it must be {describe(field.type)}"
        known = [f.encode_name for f in fields if segments or f.name not in given]
        close = difflib.get_close_matches(named[2], known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{prefix}unknown key {named[2]!r}{hint}"
    while segments and isinstance(segments[-1], int):  # a list's item: name the whole list
        segments.pop()
    if not segments:
        return f"not a table of keys: {what}"
    kind = _walk(msgspec.inspect.type_info(schema), segments)
    return f"{_key(segments)} must be {describe(kind)}, not {_shown(_value(data, segments))}"


def _walk(kind: msgspec.inspect.Type, segments: list[str | int]) -> msgspec.inspect.Type:
    """The type at ``segments`` (``["step", 1, "argv"]``) below ``kind``."""
    for segment in segments:
        kind = _unwrapped(kind)
        if isinstance(segment, int):
            assert isinstance(kind, msgspec.inspect.VarTupleType | msgspec.inspect.ListType)
            kind = kind.item_type
        else:
            assert isinstance(kind, msgspec.inspect.StructType)
            kind = next(f.type for f in kind.fields if f.encode_name == segment)
    return kind


def _unwrapped(kind: msgspec.inspect.Type) -> msgspec.inspect.Type:
    """The type itself: without its description, and "T | None" as T."""
    kind = _bare(kind)
    if isinstance(kind, msgspec.inspect.UnionType):
        kind = _bare(next(t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)))
    return kind


def _key(segments: list[str | int]) -> str:
    """``["step", 1, "argv"]`` as people count: "step 2 argv"; tables dotted: "chroot.mirror"."""
    text = ""
    for previous, segment in zip([None, *segments], segments, strict=False):
        if isinstance(segment, int):
            text += f" {segment + 1}"
        else:
            text += (
                "" if previous is None else " " if isinstance(previous, int) else "."
            ) + segment
    return text


def _value(data: Any, segments: list[str | int]) -> Any:
    for segment in segments:
        data = data[segment]
    return data


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
