"""Who is asking: a token sent as ``Authorization: Bearer``, never in the URL (the access
log records paths and queries), and what its role allows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kbo.config import Config
from kbo.orchestrator.state import StateReader
from kbo.orchestrator.state.tokens import TokenInfo, identify

# What each role may do through the API. A worker's token (its own identity, for its
# reports) is no maintainer's.
MAY_CHANGE = ("maintainer", "admin")

bearer = HTTPBearer(auto_error=False, description="a token from `kbo token add`")


def config_of(request: Request) -> Config:
    config: Config = request.app.state.config
    return config


@contextmanager
def reading(config: Config) -> Iterator[StateReader]:
    """The state database, read-only, opened where it is used: FastAPI runs dependencies
    and handlers in different threads, and an SQLite connection stays in its own."""
    state = StateReader.open(config.database)
    try:
        yield state
    finally:
        state.close()


def _unauthorized(why: str) -> HTTPException:
    return HTTPException(401, why, headers={"WWW-Authenticate": "Bearer"})


def identity(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    config: Annotated[Config, Depends(config_of)],
) -> TokenInfo | None:
    """The live token presented, None when none is; a wrong or revoked one is refused."""
    if credentials is None:
        return None
    with reading(config) as state:
        found = identify(state, credentials.credentials)
    if found is None:
        raise _unauthorized("unknown or revoked token")
    return found


def may_read(
    config: Annotated[Config, Depends(config_of)],
    who: Annotated[TokenInfo | None, Depends(identity)],
) -> TokenInfo | None:
    """With ``read_access = "token"``, reading needs a token (any role) too."""
    if who is None and config.read_access == "token":
        raise _unauthorized("a token is needed to read (Authorization: Bearer TOKEN)")
    return who


def role(*allowed: str) -> Callable[[TokenInfo | None], TokenInfo]:
    """A dependency that lets through only a token of one of these roles."""

    def check(who: Annotated[TokenInfo | None, Depends(identity)]) -> TokenInfo:
        if who is None:
            raise _unauthorized("a token is needed (Authorization: Bearer TOKEN)")
        if who.role not in allowed:
            raise HTTPException(403, f"{who.name} is a {who.role}: only {' or '.join(allowed)}")
        return who

    return check


maintainer = role(*MAY_CHANGE)
