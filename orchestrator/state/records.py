"""The records kbo keeps, as typed values: what the state package takes and returns.

A record's ``to_json`` is its wire form (replies to clients, claims to workers); the
keys there are the columns' names, so every kbo version reads them alike.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from kbo.errors import UserError
from kbo.packaging.matrix import job_key

# How a build ends, as its worker reports it (anything else is refused): it succeeded; the
# commit broke it (failed, the only ending mailed to authors); the host or a service
# failed (infra-error, retried with backoff up to infra_retries); the host lacks the
# Build-Depends (dep-wait, retried until a host that has them builds it).
OUTCOMES = ("succeeded", "failed", "infra-error", "dep-wait")
# The endings of the host's making: never the commit's fault, never mailed to authors
# ("lost": the job's leases lapsed max_attempts times).
HOST_PROBLEMS = ("infra-error", "dep-wait", "lost")
# A maintainer's `kbo cancel`: the job is never built (a claim is refused) or, running,
# its report is refused. Never mailed; a later submit or `kbo retry` queues it again.
CANCELLED = "cancelled"
# A job's states: queued, running, cancelled, or how its current attempt ended (a job
# whose retry waits keeps the ending that called for it); "lost" when its leases lapsed
# max_attempts times since it was asked for; "superseded" when a newer commit of its job
# key was queued before it was claimed (never built). An attempt may also end "lost"
# (its worker stopped renewing the lease), "superseded" or "cancelled".
JOB_STATES = ("queued", "running", *OUTCOMES, "lost", "superseded", CANCELLED)
IN_FLIGHT = ("queued", "running")
# The endings `kbo retry` gives back (a lost attempt leaves its job failed or queued).
RETRYABLE = ("failed", *HOST_PROBLEMS, CANCELLED)


def _json(text: str, what: str, kind: type) -> Any:
    """A JSON column, refused in one line if the database holds something else there."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, kind):
        raise UserError(
            f"refusing the state database: {what} is damaged (not JSON {kind.__name__})"
        )
    return value


@dataclass(frozen=True)
class JobSpec:
    """What a run asks for: one job key, built by one recipe, at one commit of one source.
    Jobs are unique on exactly these (kernel_arch rides along)."""

    source: str
    commit: str
    recipe: str
    arch: str
    featureset: str
    flavour: str
    kernel_arch: str | None = None

    @property
    def key(self) -> str:
        return job_key(self.arch, self.featureset, self.flavour)


@dataclass(frozen=True)
class Run:
    """One request (a submission or a snapshot), who made it and why."""

    id: str
    submitter: str
    reason: str
    source: str
    rev: str
    commit: str
    recipe: str
    version: str
    created_at: float = 0.0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Run:
        return cls(
            id=row["id"],
            submitter=row["submitter"],
            reason=row["reason"],
            source=row["source"],
            rev=row["rev"],
            commit=row["commit_sha"],
            recipe=row["recipe"],
            version=row["version"],
            created_at=row["created_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "submitter": self.submitter,
            "reason": self.reason,
            "source": self.source,
            "rev": self.rev,
            "commit_sha": self.commit,
            "recipe": self.recipe,
            "version": self.version,
        }


@dataclass(frozen=True)
class Job:
    id: int
    source: str
    commit: str
    recipe: str
    arch: str
    featureset: str
    flavour: str
    kernel_arch: str | None
    state: str
    current_attempt: int | None
    created_at: float
    updated_at: float

    @property
    def key(self) -> str:
        return job_key(self.arch, self.featureset, self.flavour)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"],
            source=row["source"],
            commit=row["commit_sha"],
            recipe=row["recipe"],
            arch=row["arch"],
            featureset=row["featureset"],
            flavour=row["flavour"],
            kernel_arch=row["kernel_arch"],
            state=row["state"],
            current_attempt=row["current_attempt"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "commit_sha": self.commit,
            "recipe": self.recipe,
            "arch": self.arch,
            "featureset": self.featureset,
            "flavour": self.flavour,
            "kernel_arch": self.kernel_arch,
            "state": self.state,
            "current_attempt": self.current_attempt,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "name": self.key,
        }


@dataclass(frozen=True)
class Attempt:
    """One try at building a job; only the job's current attempt may report."""

    id: int
    job_id: int
    number: int
    state: str
    worker: str | None = None
    worker_host: str | None = None
    executor: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    first_error: str | None = None
    log_path: str | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    stage: str | None = None  # the last stage its worker reported
    not_before: float | None = None  # a retry after an infra-error or dep-wait: when due
    retried_by: str | None = None  # a manual retry (`kbo retry`): who asked; else automatic

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Attempt:
        return cls(
            id=row["id"],
            job_id=row["job_id"],
            number=row["number"],
            state=row["state"],
            worker=row["worker"],
            worker_host=row["worker_host"],
            executor=row["executor"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            first_error=row["first_error"],
            log_path=row["log_path"],
            artifacts=_json(row["artifacts"] or "[]", f"attempt {row['id']}", list),
            stage=row["stage"],
            not_before=row["not_before"],
            retried_by=row["retried_by"],
        )


@dataclass(frozen=True)
class RunJob:
    """A job as one run sees it: with its current attempt, and whether this run queued it."""

    job: Job
    attempt: Attempt | None
    enqueued: bool
    attempts: int
    ending: Attempt | None = None  # the attempt that ended as the job's state says

    @property
    def retry_at(self) -> float | None:
        """When the job's waiting retry is due (after an infra-error or dep-wait)."""
        attempt = self.attempt
        if self.job.state in HOST_PROBLEMS and attempt is not None and attempt.state == "queued":
            return attempt.not_before
        return None

    @property
    def ended(self) -> bool:
        """Whether a client waiting on the run stops waiting for this job: it succeeded,
        failed, was lost, superseded or cancelled, ran out of infra-error retries, or
        waits for a host with its Build-Depends (which may take days)."""
        state = self.job.state
        return state in ("succeeded", "failed", "dep-wait", "lost", "superseded", CANCELLED) or (
            state == "infra-error" and self.retry_at is None
        )

    def to_json(self) -> dict[str, Any]:
        attempt = self.attempt
        # While a retry waits, the error is the ending attempt's, not the queued one's.
        told = self.ending if self.ending is not None else attempt
        return self.job.to_json() | {
            "enqueued": self.enqueued,
            "attempt": attempt.number if attempt else None,
            "attempts": self.attempts,
            "worker": attempt.worker if attempt else None,
            "worker_host": attempt.worker_host if attempt else None,
            "executor": attempt.executor if attempt else None,
            "first_error": told.first_error if told else None,
            "log_path": told.log_path if told else None,
            "artifacts": attempt.artifacts if attempt else [],
            "stage": attempt.stage if attempt else None,
            "started_at": attempt.started_at if attempt else None,
            "ended_at": attempt.ended_at if attempt else None,
            "retry_at": self.retry_at,
            "retried_by": attempt.retried_by if attempt else None,
            "ended": self.ended,
        }


@dataclass(frozen=True)
class RunSummary:
    run: Run
    jobs: list[RunJob]

    def to_json(self) -> dict[str, Any]:
        return self.run.to_json() | {"jobs": [j.to_json() for j in self.jobs]}


@dataclass(frozen=True)
class JobResult:
    """One job's state at one commit, for judging where an arch stands."""

    commit: str
    arch: str
    featureset: str
    flavour: str
    state: str


@dataclass(frozen=True)
class HostProblem:
    """Why a job is not built though its commit is not to blame: the host failed it
    (``infra-error``) or lacks its Build-Depends (``dep-wait``)."""

    state: str
    error: str | None
    worker: str | None
    log: str | None
    retry_at: float | None  # when its next attempt is due; None: no retry waits
    infra_errors: int  # its attempts that ended infra-error

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "error": self.error,
            "worker": self.worker,
            "log": self.log,
            "retry_at": self.retry_at,
            "infra_errors": self.infra_errors,
        }


@dataclass(frozen=True)
class Alert:
    """A failure already mailed for a job key of a recipe: what it said, and since when."""

    first_error: str
    since_commit: str


@dataclass(frozen=True)
class OutboxMail:
    """A report waiting to be mailed (or sent). ``message`` is fixed when first composed."""

    id: int
    kind: str  # failure, fixed or digest
    data: dict[str, Any]
    message: str | None
    state: str  # pending, sent, or skipped (it cannot be composed or delivered)
    created_at: float
    attempts: int
    next_try: float
    last_error: str | None  # why the last try failed, or why it was skipped
    claimed_by: str | None = None  # the sender at work on it, until its claim expires

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OutboxMail:
        return cls(
            id=row["id"],
            kind=row["kind"],
            data=_json(row["data"], f"outbox row {row['id']}", dict),
            message=row["message"],
            state=row["state"],
            created_at=row["created_at"],
            attempts=row["attempts"],
            next_try=row["next_try"],
            last_error=row["last_error"],
            claimed_by=row["claimed_by"],
        )

    @property
    def subject(self) -> str:
        prefix = "Subject: "
        found = (ln for ln in (self.message or "").splitlines() if ln.startswith(prefix))
        return next((ln[len(prefix) :] for ln in found), f"({self.kind}, not composed)")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "created_at": self.created_at,
            "attempts": self.attempts,
            "next_try": self.next_try,
            "last_error": self.last_error,
            "subject": self.subject,
        }


@dataclass(frozen=True)
class CachedMatrix:
    """The jobs of the matrix at one commit, kept so no reader parses that commit again."""

    version: str
    jobs: list[tuple[str, str, str, str | None, bool]]  # arch, featureset, flavour, ...


@dataclass(frozen=True)
class WorkerInfo:
    """A build worker as it announced itself (``kbo worker``), and when last seen."""

    name: str
    host: str
    arches: list[str]
    executors: dict[str, list[str]]  # per arch, how this worker builds it
    slots: int
    version: str
    started_at: float
    last_seen: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> WorkerInfo:
        return cls(
            name=row["name"],
            host=row["host"],
            arches=_json(row["arches"], f"worker {row['name']}", list),
            executors=_json(row["executors"], f"worker {row['name']}", dict),
            slots=row["slots"],
            version=row["version"],
            started_at=row["started_at"],
            last_seen=row["last_seen"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "arches": self.arches,
            "executors": self.executors,
            "slots": self.slots,
            "version": self.version,
            "started_at": self.started_at,
            "last_seen": self.last_seen,
        }


@dataclass(frozen=True)
class WorkerView:
    """A worker for `kbo workers`: its announcement, the jobs it builds now, and its
    attempts that ended infra-error lately."""

    info: WorkerInfo
    jobs: list[str]  # job keys of its running attempts
    infra_errors: int

    def to_json(self) -> dict[str, Any]:
        return self.info.to_json() | {"jobs": self.jobs, "infra_errors": self.infra_errors}


@dataclass(frozen=True)
class Bisection:
    """The search for the first bad commit of one job key between ``good`` and ``bad``
    (``commits``: ``git rev-list --first-parent good..bad``, oldest first). ``low`` and
    ``high`` are the bounds so far, ``building`` the commit whose build it waits for,
    ``steps`` the builds it queued, ``mail_id`` the failure mail it holds back."""

    id: int
    source: str
    recipe: str
    arch: str
    featureset: str
    flavour: str
    kernel_arch: str | None
    good: str
    bad: str
    job_id: int
    first_error: str | None
    commits: list[str]
    max_steps: int
    state: str  # running, found, skipped, gave-up
    steps: int
    low: str | None
    high: str | None
    culprit: str | None
    skipped: list[str]
    building: str | None
    mail_id: int | None
    started_by: str
    started_at: float
    ended_at: float | None

    @property
    def key(self) -> str:
        return job_key(self.arch, self.featureset, self.flavour)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Bisection:
        what = f"bisection {row['id']}"
        return cls(
            **{k: row[k] for k in row.keys() if k not in ("commits", "skipped")},  # noqa: SIM118
            commits=[str(c) for c in _json(row["commits"], what, list)],
            skipped=[str(c) for c in _json(row["skipped"], what, list)],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.key,
            "arch": self.arch,
            "featureset": self.featureset,
            "flavour": self.flavour,
            "recipe": self.recipe,
            "good": self.good,
            "bad": self.bad,
            "job": self.job_id,
            "commits": len(self.commits),
            "state": self.state,
            "builds": self.steps,
            "max_builds": self.max_steps,
            "low": self.low,
            "high": self.high,
            "culprit": self.culprit,
            "skipped": self.skipped,
            "building": self.building,
            "started_by": self.started_by,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }
