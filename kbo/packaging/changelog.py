"""The head of ``debian/changelog``: what is being built, for which suite, by whom."""

from __future__ import annotations

from dataclasses import dataclass

from debian.changelog import Changelog, ChangelogParseError

from kbo.errors import UserError
from kbo.packaging.debian_config.tree import DebianTree


@dataclass(frozen=True)
class ChangelogHead:
    source: str
    version: str
    distribution: str
    uploader: str
    date: str


def read_head(tree: DebianTree) -> ChangelogHead:
    """Parse only the newest entry: the 6.1 changelog has 56,000 lines behind it."""
    where = tree.where("changelog")
    data = tree.read("changelog")
    if data is None:
        raise UserError("missing", where)
    try:
        block = next(iter(Changelog(data, max_blocks=1, strict=True)), None)
    except (ChangelogParseError, ValueError, UnicodeDecodeError) as e:
        raise UserError(str(e).splitlines()[0], where) from None
    if block is None or block.package is None or block.version is None:
        raise UserError("no entry found", where)
    if not block.author or not block.date:
        raise UserError(f"entry {block.version} has no trailer line ( -- name <mail>  date)", where)
    return ChangelogHead(
        source=block.package,
        version=str(block.version),
        distribution=block.distributions or "",
        uploader=block.author,
        date=block.date,
    )
