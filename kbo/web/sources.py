"""Which packaging repositories a submission through ``kbo web`` may name: those matching
``allowed_repositories`` (globs), by default only the configured ``repository``."""

from __future__ import annotations

import fnmatch
import re

from fastapi import HTTPException

from kbo.config import Config
from kbo.packaging.repository import is_url, source_id

# A path segment "." or "..": the URL would name another repository than it seems to.
_DOT_SEGMENT = re.compile(r"(^|/)\.\.?(/|$)")


def allowed(config: Config) -> tuple[str, ...]:
    return config.allowed_repositories or ((config.repository,) if config.repository else ())


def check_source(config: Config, given: str | None) -> str | None:
    """The source to send on (a path made absolute, as `kbo submit` sends it; None for the
    configured repository), or 403 with one line when it is not allowed."""
    source = given or config.repository
    if not source:
        raise HTTPException(422, "no source given and no repository configured")
    if is_url(source):
        path = source.split("://", 1)[1].split("?", 1)[0]
        if _DOT_SEGMENT.search(path):
            raise HTTPException(422, "the source URL has . or .. segments")
        named = source
    else:
        named = source_id(source)  # "/srv/git/../x" is judged as the path it is
    for pattern in allowed(config):
        own = pattern if is_url(pattern) else source_id(pattern)
        if named == own or fnmatch.fnmatchcase(named, pattern):
            return None if given is None else named
    raise HTTPException(
        403, f"source {named} is not among the allowed repositories (allowed_repositories)"
    )
