"""The coordinator's answer to a claim, checked as user input before anything is built.

The answer comes over the broker: whoever can write to it, or a coordinator reading a
damaged database, can forge or garble one. Its fields become paths (the job's log and
build directories are named after arch, featureset and flavour), a git revision, make
targets and a recipe to look up. So each is held to its shape here, and a reply that
breaks any is refused whole, in one line naming the field, before the worker creates a
directory or a log for it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from kbo.errors import InfraError
from kbo.packaging.repository import is_url
from kbo.recipes import EXECUTORS
from kbo.text import NAME

# A name longer than this is no Debian arch, featureset, flavour or recipe.
MAX_NAME = 64
# A week: far above any sensible lease_seconds (the setting itself has no maximum).
MAX_LEASE_SECONDS = 7 * 24 * 3600
MAX_SOURCE = 4096
MAX_REASON = 1000
# No timeout from history above this (the recipe's own bounds it further).
MAX_TIMEOUT = 30 * 24 * 3600

_NAME = re.compile(NAME)
_COMMIT = re.compile("[0-9a-f]{40}")
_NAMES = ("recipe", "arch", "featureset", "flavour")


class BadClaim(InfraError):
    """The reply to a claim is not one the coordinator sends: nothing is built."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "the coordinator's reply to a claim")


@dataclass(frozen=True)
class Claim:
    """A checked reply: the job (only its checked fields) when accepted, else None;
    ``timeouts``: per executor, the timeout the job key's earlier builds set and why
    (the worker still never allows more than the recipe)."""

    accepted: bool
    reason: str
    lease_seconds: float
    job: dict[str, Any] | None
    timeouts: dict[str, tuple[int, str]] = field(default_factory=dict)


def checked_claim(reply: object) -> Claim:
    """``reply`` as a Claim, every field held to its shape; a BadClaim naming the first
    field that is not."""
    if not isinstance(reply, dict):
        raise BadClaim(f"not a dict but {type(reply).__name__}")
    accepted = _field(reply, "accepted", "")
    if not isinstance(accepted, bool):
        raise BadClaim(f"accepted is {_shown(accepted)}, not true or false")
    reason = _field(reply, "reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON or not reason.isprintable():
        raise BadClaim(f"reason {_shown(reason)} is not one line of printable text")
    lease = _field(reply, "lease_seconds", "")
    if (
        isinstance(lease, bool)
        or not isinstance(lease, int | float)
        or not math.isfinite(lease)
        or not 0 < lease <= MAX_LEASE_SECONDS
    ):
        raise BadClaim(
            f"lease_seconds {_shown(lease)} is not a number of seconds "
            f"above 0 and at most {MAX_LEASE_SECONDS}"
        )
    job = _field(reply, "job", "")
    if not accepted:
        if job is not None:
            raise BadClaim("a refused claim comes with a job")
        return Claim(False, reason, lease, None)
    return Claim(True, reason, lease, checked_job(job), checked_timeouts(reply.get("timeouts")))


def checked_timeouts(value: object) -> dict[str, tuple[int, str]]:
    """The reply's timeouts from history: {executor: {"seconds": N, "why": TEXT}}, each
    checked; none (an older coordinator) is no timeout from history."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > len(EXECUTORS):
        raise BadClaim(f"timeouts {_shown(value)} is not a dict of executors")
    checked = {}
    for executor, limit in value.items():
        if executor not in EXECUTORS:
            raise BadClaim(f"timeouts: {_shown(executor)} is not an executor")
        if not isinstance(limit, dict) or set(limit) != {"seconds", "why"}:
            raise BadClaim(f"timeouts.{executor} {_shown(limit)} is not seconds and why")
        seconds, why = limit["seconds"], limit["why"]
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int)
            or not 0 < seconds <= (MAX_TIMEOUT)
        ):
            raise BadClaim(
                f"timeouts.{executor}.seconds {_shown(seconds)} is not a whole number of "
                f"seconds from 1 to {MAX_TIMEOUT}"
            )
        if not isinstance(why, str) or len(why) > MAX_REASON or not why.isprintable():
            raise BadClaim(f"timeouts.{executor}.why {_shown(why)} is not one line of text")
        checked[executor] = (seconds, why)
    return checked


def checked_job(job: object) -> dict[str, Any]:
    """The fields of an accepted claim's job that the worker uses, each checked; the
    others (ids, states, times) are left out so that nothing unchecked reaches a build."""
    if not isinstance(job, dict):
        raise BadClaim(f"job is {_shown(job)}, not a dict")
    checked: dict[str, Any] = {}
    source = _field(job, "source", "job.")
    if (
        not isinstance(source, str)
        or not 0 < len(source) <= MAX_SOURCE
        or not source.isprintable()
        or source.startswith("-")  # is_url takes "-o...@host:path", scp-style
        or not (is_url(source) or source.startswith("/"))
    ):
        raise BadClaim(f"job.source {_shown(source)} is neither a URL nor an absolute path")
    checked["source"] = source
    commit = _field(job, "commit_sha", "job.")
    if not isinstance(commit, str) or not _COMMIT.fullmatch(commit):
        raise BadClaim(f"job.commit_sha {_shown(commit)} is not 40 lowercase hex digits")
    checked["commit_sha"] = commit
    for key in _NAMES:
        checked[key] = _name(key, _field(job, key, "job."))
    kernel_arch = _field(job, "kernel_arch", "job.")
    if kernel_arch is not None and kernel_arch != "":  # None and "": the job names none
        kernel_arch = _name("kernel_arch", kernel_arch)
    checked["kernel_arch"] = kernel_arch or None
    attempt = _field(job, "attempt", "job.")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise BadClaim(f"job.attempt {_shown(attempt)} is not a whole number from 1")
    checked["attempt"] = attempt
    return checked


def _field(reply: dict[Any, Any], key: str, prefix: str) -> object:
    if key not in reply:
        raise BadClaim(f"{prefix}{key} is missing")
    return reply[key]


def _name(key: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME or not _NAME.fullmatch(value):
        raise BadClaim(
            f"job.{key} {_shown(value)} is not a name ({NAME}, at most {MAX_NAME} characters)"
        )
    return value


def _shown(value: object) -> str:
    """``value`` for a one-line message: its repr, cut short."""
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
