"""Who may use ``kbo web``: named tokens, each with a role, kept only as a hash.

A token is ``kbo_`` and 32 random bytes (``secrets.token_urlsafe``): 256 bits that nobody
chose. Its SHA-256 is all that is stored. A slow KDF (bcrypt, scrypt, argon2) guards
passwords people pick, which a stolen hash would let an attacker guess cheaply; against
256 random bits there is nothing to guess, and one SHA-256 is cheap enough to check
on every request. A presented token is compared with every live hash by
``hmac.compare_digest``, so how long a check takes tells nothing about any hash.

These are the only writes to the database that are not the coordinator's: ``kbo token``
runs on the coordinator's host, as its admin, and each write is one small statement on
this table alone, which the coordinator never touches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from kbo.errors import UserError
from kbo.orchestrator.state.reader import StateReader
from kbo.orchestrator.state.writer import State

# What a token may do. A maintainer submits, retries and cancels; an admin may do that
# too (and will manage the service). 'worker' is for build hosts (with their arches).
ROLES = ("maintainer", "admin", "worker")
# Names become a run's submitter: a person or a host, as kbo shows them elsewhere.
TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._+-]{0,63}")
PREFIX = "kbo_"


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never its secret, nor its hash."""

    name: str
    role: str
    created_at: float
    revoked_at: float | None = None
    arches: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "arches": self.arches,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def check_name(name: str) -> str:
    if not TOKEN_NAME.fullmatch(name):
        raise UserError(
            f"{name!r} is not a token name (letters, digits and @._+-, at most 64, "
            "starting with a letter or digit)"
        )
    return name


def add(state: State, name: str, role: str, arches: tuple[str, ...] = ()) -> str:
    """A new token for ``name``; the secret, to be shown once. A name whose token was
    revoked gets a new one; a name with a live token is refused."""
    check_name(name)
    if role not in ROLES:
        raise UserError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    token = PREFIX + secrets.token_urlsafe(32)
    with state.transaction() as tx:
        try:
            tx.db.execute(
                "INSERT INTO tokens (name, role, hash, arches, created_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash,"
                " arches = excluded.arches, created_at = excluded.created_at, revoked_at = NULL"
                " WHERE revoked_at IS NOT NULL",
                (name, role, digest(token), json.dumps(list(arches)), time.time()),
            )
        except sqlite3.IntegrityError as e:  # one chance in 2**256: an equal hash
            raise UserError(f"cannot add the token: {e}") from None
        if tx.db.execute("SELECT changes()").fetchone()[0] == 0:
            raise UserError(f"{name} has a token already: `kbo token revoke {name}` first")
    return token


def revoke(state: State, name: str) -> bool:
    """Revoke ``name``'s token at once; False when it has none live."""
    with state.transaction() as tx:
        tx.db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (time.time(), name),
        )
        return bool(tx.db.execute("SELECT changes()").fetchone()[0])


def listed(state: StateReader) -> list[TokenInfo]:
    rows = state._all("SELECT * FROM tokens ORDER BY name")
    return [_info(row) for row in rows]


def identify(state: StateReader, token: str) -> TokenInfo | None:
    """The live token ``token`` is, or None. Every live hash is compared, in constant
    time each, and none is skipped once one matches."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    presented = digest(token)
    found = None
    for row in state._all("SELECT * FROM tokens WHERE revoked_at IS NULL"):
        if hmac.compare_digest(presented, row["hash"]):
            found = _info(row)
    return found


def _info(row: sqlite3.Row) -> TokenInfo:
    try:
        arches = json.loads(row["arches"])
    except ValueError:
        arches = []
    return TokenInfo(
        name=row["name"],
        role=row["role"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        arches=arches if isinstance(arches, list) else [],
    )
