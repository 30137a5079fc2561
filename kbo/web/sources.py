"""Which packaging repositories a submission through ``kbo web`` may name: those matching
``allowed_repositories`` (globs), by default only the configured ``repository``."""

from __future__ import annotations

import fnmatch
import re
from urllib.parse import unquote

from fastapi import HTTPException

from kbo.config import Config
from kbo.packaging.repository import is_url, source_id

# A path segment "." or "..": the URL would name another repository than it seems to.
_DOT_SEGMENT = re.compile(r"(^|[/\\])\.\.?([/\\]|$)")


def _location(url: str) -> str:
    """What follows the scheme (or the ``user@host:`` of git's scp-like form),
    percent-decoded as git decodes a file:// URL and a web server a path: %2e%2e is a
    ".." segment too, and so is one after a "?"."""
    rest = url.split("://", 1)[1] if "://" in url else url.split(":", 1)[1]
    return unquote(rest)


_PATH_START = re.compile(r"[/?#\\]")


def _server(url: str) -> str:
    """The part of a URL that names the server: its scheme and everything up to its path,
    query or fragment (``user@host`` of git's scp-like form)."""
    if "://" not in url:
        return url.split(":", 1)[0]
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{_PATH_START.split(rest, maxsplit=1)[0]}"


def _matches(named: str, pattern: str) -> bool:
    """A glob's "*" crosses "/": a URL's server must match the pattern's server on its
    own, or https://*.debian.org/* would take https://evil.example/x.debian.org/linux."""
    if not fnmatch.fnmatchcase(named, pattern):
        return False
    return not is_url(named) or fnmatch.fnmatchcase(_server(named), _server(pattern))


def allowed(config: Config) -> tuple[str, ...]:
    return config.allowed_repositories or ((config.repository,) if config.repository else ())


def check_source(config: Config, given: str | None) -> str | None:
    """The source to send on (a path made absolute, as `kbo submit` sends it; None for the
    configured repository), or 403 with one line when it is not allowed."""
    source = given or config.repository
    if not source:
        raise HTTPException(422, "no source given and no repository configured")
    if is_url(source):
        if _DOT_SEGMENT.search(_location(source)):
            raise HTTPException(422, "the source URL has . or .. segments")
        named = source
    else:
        named = source_id(source)  # "/srv/git/../x" is judged as the path it is
    for pattern in allowed(config):
        own = pattern if is_url(pattern) else source_id(pattern)
        if named == own or _matches(named, pattern):
            return None if given is None else named
    raise HTTPException(
        403, f"source {named} is not among the allowed repositories (allowed_repositories)"
    )
