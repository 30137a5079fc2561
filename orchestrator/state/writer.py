"""Every change to kbo's state happens here.

The coordinator makes them (and, for the outbox, ``kbo digest``). Every transition checks
the state it expects inside one transaction, so a re-delivered message or a repeated
report changes nothing. A job is unique on (source, commit, recipe, arch, featureset,
flavour).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbo.errors import InfraError, UserError
from kbo.orchestrator.retries import RetryPolicy
from kbo.orchestrator.state import schema
from kbo.orchestrator.state.reader import StateReader, _connect
from kbo.orchestrator.state.records import (
    CANCELLED,
    HOST_PROBLEMS,
    IN_FLIGHT,
    OUTCOMES,
    RETRYABLE,
    Alert,
    Bisection,
    Job,
    JobSpec,
    Run,
    WorkerInfo,
)


@dataclass(frozen=True)
class Verdict:
    """The answer to a worker's claim or report: accepted, or refused and why."""

    accepted: bool
    reason: str = ""
    job: Job | None = None
    attempt_number: int | None = None


@dataclass(frozen=True)
class Cancellation:
    """What ``kbo cancel`` did: each job it cancelled with the state it was in, and the
    jobs it left as they were (they had ended)."""

    cancelled: list[tuple[Job, str]]
    left: list[Job]


@dataclass(frozen=True)
class GiveBack:
    """``kbo retry``: the new attempt, or why there is none."""

    attempt_id: int | None
    reason: str = ""
    job: Job | None = None


class Transaction:
    """The writes that must happen together with a decision made inside one transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def alert(self, job: Job) -> Alert | None:
        row = self.db.execute(
            "SELECT first_error, since_commit FROM alerts WHERE source = ? AND recipe = ?"
            " AND arch = ? AND featureset = ? AND flavour = ?",
            _alert_key(job),
        ).fetchone()
        return None if row is None else Alert(row[0], row[1])

    def raise_alert(self, job: Job, first_error: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO alerts (source, recipe, arch, featureset, flavour,"
            " first_error, since_commit) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*_alert_key(job), first_error, job.commit),
        )

    def clear_alert(self, job: Job) -> None:
        self.db.execute(
            "DELETE FROM alerts WHERE source = ? AND recipe = ? AND arch = ?"
            " AND featureset = ? AND flavour = ?",
            _alert_key(job),
        )

    def host_infra_errors(self, host: str, since: float) -> list[dict[str, Any]]:
        """The attempts on ``host`` that ended infra-error since ``since``, newest first."""
        rows = self.db.execute(
            "SELECT a.id, a.worker, a.ended_at, a.first_error, j.arch, j.featureset,"
            " j.flavour, j.commit_sha FROM attempts a JOIN jobs j ON j.id = a.job_id"
            " WHERE a.worker_host = ? AND a.state = 'infra-error' AND a.ended_at >= ?"
            " ORDER BY a.ended_at DESC",
            (host, since),
        ).fetchall()
        return [dict(row) for row in rows]

    def mailed_since(self, kind: str, fold: str, since: float) -> bool:
        """Whether a mail of this kind and fold key was queued since ``since``."""
        row = self.db.execute(
            "SELECT 1 FROM outbox WHERE kind = ? AND fold_key = ? AND created_at >= ? LIMIT 1",
            (kind, fold, since),
        ).fetchone()
        return row is not None

    def queue_report(
        self, kind: str, fold: str, entry: dict[str, Any], delay: float, now: float
    ) -> int:
        """Add ``entry`` to the report not yet composed with this fold key, or start one;
        the report's id."""
        open_report = self.db.execute(
            "SELECT id, data FROM outbox WHERE fold_key = ? AND message IS NULL"
            " AND state = 'pending'",
            (fold,),
        ).fetchone()
        if open_report is not None:
            data = json.loads(open_report["data"])
            data["jobs"].append(entry)
            self.db.execute(
                "UPDATE outbox SET data = ? WHERE id = ?", (json.dumps(data), open_report["id"])
            )
            return int(open_report["id"])
        return self.queue_mail(kind, {"jobs": [entry]}, now, due=now + delay, fold=fold)

    def queue_mail(
        self, kind: str, data: dict[str, Any], now: float, *, due: float, fold: str | None = None
    ) -> int:
        """A new pending mail; its id."""
        mail_id = self.db.execute(
            "INSERT INTO outbox (kind, fold_key, data, created_at, due_at, next_try)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kind, fold, json.dumps(data), now, due, now),
        ).lastrowid
        assert mail_id is not None
        return mail_id


def _create(path: Path) -> None:
    """A new database, made whole under another name and linked into place, so no other
    process ever sees the empty file SQLite starts from (it would refuse it as truncated).
    When two processes create it at once, the first link wins and both use that one."""
    spare = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        spare.unlink(missing_ok=True)
        db = _connect(str(spare), path)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            schema.migrate(db, path)
        finally:
            db.close()
        os.link(spare, path)
    except FileExistsError:
        pass
    except OSError as e:
        raise UserError(f"cannot create the state database: {e}", str(path)) from None
    finally:
        with contextlib.suppress(OSError):
            spare.unlink(missing_ok=True)


def _alert_key(job: Job) -> tuple[str, str, str, str, str]:
    return (job.source, job.recipe, job.arch, job.featureset, job.flavour)


class State(StateReader):
    """The state database, opened for writing (and migrated to the current schema).

    ``retries`` is when a job that ended for the host's sake is tried again (the
    coordinator's settings); without it, every report ends its job as reported.
    """

    def __init__(self, path: Path, retries: RetryPolicy | None = None) -> None:
        self.retries = retries
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the state directory: {e}", str(path.parent)) from None
        if not path.exists():
            _create(path)
        schema.check_file(path)
        db = _connect(str(path), path)
        schema.version_of(db, path)  # refuses another program's file before changing it
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as e:
            raise UserError(f"cannot open the state database: {e}", str(path)) from None
        schema.migrate(db, path)
        super().__init__(db, path)

    def check_writable(self) -> None:
        """Fail now, in one line, rather than at the first report."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("ROLLBACK")
        except sqlite3.Error as e:
            raise UserError(f"the state database is not writable: {e}", str(self.path)) from None

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise InfraError(f"cannot write the state database: {e}", str(self.path)) from None
        try:
            yield Transaction(self.db)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # -- submission ------------------------------------------------------------------

    def record_run(
        self,
        run: Run,
        specs: Iterable[JobSpec],
        *,
        retry_failed: bool = True,
        supersede: Collection[str] = (),
    ) -> list[int]:
        """Get-or-create the run and its jobs; return the attempt ids to enqueue.

        A job already queued, running or done gains nothing, nor does one whose retry
        waits (after an infra-error or dep-wait). A failed or lost job, or one out of
        infra-error retries, gains a new attempt when ``retry_failed``. Calling this twice
        for one run id is harmless.

        A job queued here supersedes the jobs of its job key, source and recipe still
        queued (not claimed) at the commits of ``supersede`` (older commits, for a
        snapshot at HEAD): they end ``superseded`` and are never built.
        """
        now = time.time()
        to_publish: list[int] = []
        with self.transaction() as tx:
            db = tx.db
            created = db.execute(
                "INSERT OR IGNORE INTO runs (id, created_at, submitter, reason, source, rev,"
                " commit_sha, recipe, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id,
                    now,
                    run.submitter,
                    run.reason,
                    run.source,
                    run.rev,
                    run.commit,
                    run.recipe,
                    run.version,
                ),
            ).rowcount
            if not created:
                return []
            for spec in specs:
                job_id, attempt_id = self._ensure_job(db, spec, now, retry_failed)
                db.execute(
                    "INSERT OR IGNORE INTO run_jobs (run_id, job_id, enqueued) VALUES (?, ?, ?)",
                    (run.id, job_id, attempt_id is not None),
                )
                if attempt_id is not None:
                    to_publish.append(attempt_id)
                    if supersede:
                        self._supersede(db, spec, supersede, now)
        return to_publish

    @staticmethod
    def _supersede(
        db: sqlite3.Connection, spec: JobSpec, older: Collection[str], now: float
    ) -> None:
        rows = db.execute(
            "SELECT j.id, j.commit_sha, j.current_attempt FROM jobs j"
            " JOIN attempts a ON a.id = j.current_attempt"
            " WHERE j.source = ? AND j.recipe = ? AND j.state = 'queued' AND j.arch = ?"
            " AND j.featureset = ? AND j.flavour = ? AND j.commit_sha != ?"
            " AND a.state = 'queued' AND NOT EXISTS (SELECT 1 FROM run_jobs rj"
            "  JOIN runs r ON r.id = rj.run_id WHERE rj.job_id = j.id"
            "  AND r.reason LIKE 'bisect %')",
            (spec.source, spec.recipe, spec.arch, spec.featureset, spec.flavour, spec.commit),
        ).fetchall()
        for row in rows:
            if row["commit_sha"] not in older:
                continue
            db.execute(
                "UPDATE attempts SET state = 'superseded', ended_at = ?, first_error = ?"
                " WHERE id = ?",
                (now, f"superseded by {spec.commit}", row["current_attempt"]),
            )
            db.execute(
                "UPDATE jobs SET state = 'superseded', updated_at = ? WHERE id = ?",
                (now, row["id"]),
            )

    def _ensure_job(
        self, db: sqlite3.Connection, spec: JobSpec, now: float, retry_failed: bool
    ) -> tuple[int, int | None]:
        row = db.execute(
            "SELECT j.id, j.state, a.state AS attempt_state FROM jobs j"
            " LEFT JOIN attempts a ON a.id = j.current_attempt WHERE j.source = ?"
            " AND j.commit_sha = ? AND j.recipe = ? AND j.arch = ? AND j.featureset = ?"
            " AND j.flavour = ?",
            (spec.source, spec.commit, spec.recipe, spec.arch, spec.featureset, spec.flavour),
        ).fetchone()
        if row is None:
            job_id = db.execute(
                "INSERT INTO jobs (source, commit_sha, recipe, arch, featureset, flavour,"
                " kernel_arch, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                (
                    spec.source,
                    spec.commit,
                    spec.recipe,
                    spec.arch,
                    spec.featureset,
                    spec.flavour,
                    spec.kernel_arch,
                    now,
                    now,
                ),
            ).lastrowid
            assert job_id is not None
            return job_id, self._new_attempt(db, job_id, now, "request")
        ended = row["state"] in ("failed", "lost", "superseded", CANCELLED) or (
            row["state"] in HOST_PROBLEMS and row["attempt_state"] != "queued"
        )
        if ended and retry_failed:
            db.execute(
                "UPDATE jobs SET state = 'queued', updated_at = ? WHERE id = ?", (now, row["id"])
            )
            return row["id"], self._new_attempt(db, row["id"], now, "request")
        return row["id"], None

    @staticmethod
    def _new_attempt(
        db: sqlite3.Connection,
        job_id: int,
        now: float,
        cause: str,
        not_before: float | None = None,
    ) -> int:
        """A new current attempt, queued; the sweep publishes it once ``not_before``.
        ``cause``: 'request' (a run asked), 'lease' (the last one was lost) or 'retry'
        (after an infra-error or dep-wait)."""
        number = db.execute(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE job_id = ?", (job_id,)
        ).fetchone()[0]
        attempt_id = db.execute(
            "INSERT INTO attempts (job_id, number, state, created_at, not_before, cause)"
            " VALUES (?, ?, 'queued', ?, ?, ?)",
            (job_id, number, now, not_before, cause),
        ).lastrowid
        assert attempt_id is not None
        db.execute("UPDATE jobs SET current_attempt = ? WHERE id = ?", (attempt_id, job_id))
        return attempt_id

    def take_for_publishing(self, attempt_ids: Iterable[int], republish_after: float) -> list[int]:
        """Mark as published now each attempt that is queued, due, and not published within
        ``republish_after``; return those this call took. Only the caller that took an
        attempt sends it, so a submission and the sweep never both publish one."""
        now = time.time()
        taken = []
        with self.transaction() as tx:
            for attempt_id in attempt_ids:
                if tx.db.execute(
                    "UPDATE attempts SET published_at = ? WHERE id = ? AND state = 'queued'"
                    " AND (published_at IS NULL OR published_at < ?)"
                    " AND (not_before IS NULL OR not_before <= ?)",
                    (now, attempt_id, now - republish_after, now),
                ).rowcount:
                    taken.append(attempt_id)
        return taken

    def release_publishing(self, attempt_ids: Iterable[int]) -> None:
        """Attempts taken for publishing whose message was not sent: the next sweep's."""
        with self.transaction() as tx:
            tx.db.executemany(
                "UPDATE attempts SET published_at = NULL WHERE id = ? AND state = 'queued'",
                [(a,) for a in attempt_ids],
            )

    def keep_matrix(
        self, source: str, commit: str, version: str, jobs: list[tuple[Any, ...]]
    ) -> None:
        """Remember the matrix at a commit; commits never change, so it never goes stale."""
        with self.transaction() as tx:
            tx.db.execute(
                "INSERT OR REPLACE INTO matrices (source, commit_sha, format, version, jobs)"
                " VALUES (?, ?, ?, ?, ?)",
                (source, commit, schema.MATRIX_FORMAT, version, json.dumps(jobs)),
            )

    # -- worker reports ----------------------------------------------------------------

    def claim(self, attempt_id: int, token: str, worker: str, host: str, lease: float) -> Verdict:
        """A worker takes a queued attempt; anything else is refused, changing nothing.

        The same delivery asking again (its first claim's answer was lost with a
        coordinator that died) is answered as the first time, its lease renewed."""
        now = time.time()
        with self.transaction() as tx:
            row = self._attempt_row(tx.db, attempt_id)
            if row is None:
                return Verdict(False, f"attempt {attempt_id} does not exist")
            if row["current_attempt"] != attempt_id:
                return Verdict(False, f"attempt {attempt_id} is superseded")
            if row["state"] == "running" and row["token"] == token:
                tx.db.execute(
                    "UPDATE attempts SET lease_expires = ? WHERE id = ?", (now + lease, attempt_id)
                )
                job = tx.db.execute("SELECT * FROM jobs WHERE id = ?", (row["job_id"],)).fetchone()
                return Verdict(True, "claimed again", Job.from_row(job), row["number"])
            if row["state"] != "queued":
                return Verdict(False, f"attempt {attempt_id} is {row['state']}, not queued")
            tx.db.execute(
                "UPDATE attempts SET state = 'running', token = ?, worker = ?, worker_host = ?,"
                " started_at = ?, lease_expires = ? WHERE id = ?",
                (token, worker, host, now, now + lease, attempt_id),
            )
            tx.db.execute(
                "UPDATE jobs SET state = 'running', updated_at = ? WHERE id = ?",
                (now, row["job_id"]),
            )
            job = tx.db.execute("SELECT * FROM jobs WHERE id = ?", (row["job_id"],)).fetchone()
        return Verdict(True, job=Job.from_row(job), attempt_number=row["number"])

    def renew_lease(
        self, attempt_id: int, token: str, lease: float, stage: str | None = None
    ) -> str:
        """Renew a running attempt's lease, and note the stage its worker says it is in.

        Returns "held" when renewed, "ended" when this attempt's outcome is recorded, and
        "lost" for anything else: the lease lapsed (the job was queued again), or this
        token does not own the attempt.
        """
        with self.transaction() as tx:
            if tx.db.execute(
                "UPDATE attempts SET lease_expires = ?, stage = COALESCE(?, stage)"
                " WHERE id = ? AND token = ? AND state = 'running'",
                (time.time() + lease, stage, attempt_id, token),
            ).rowcount:
                return "held"
            row = self._attempt_row(tx.db, attempt_id)
        if row is not None and row["token"] == token and row["state"] in OUTCOMES:
            return "ended"
        return "lost"

    def finish(self, attempt_id: int, token: str, result: dict[str, Any]) -> Verdict:
        """Record the outcome of the attempt that owns its job; refuse any other report,
        and any outcome but ``OUTCOMES``. An infra-error or dep-wait queues the job's next
        attempt, due when ``retries`` says, in the same transaction."""
        outcome = result.get("outcome")
        if not isinstance(outcome, str) or outcome not in OUTCOMES:
            return Verdict(False, f"unknown outcome {str(outcome)[:40]!r}")
        now = time.time()
        with self.transaction() as tx:
            row = self._attempt_row(tx.db, attempt_id)
            if row is None:
                return Verdict(False, f"attempt {attempt_id} does not exist")
            if row["token"] != token:
                return Verdict(False, f"attempt {attempt_id} is not owned by this delivery")
            if row["state"] == outcome:
                return Verdict(True, "already recorded")
            if row["state"] != "running" or row["current_attempt"] != attempt_id:
                return Verdict(False, f"attempt {attempt_id} is {row['state']}; report refused")
            tx.db.execute(
                "UPDATE attempts SET state = ?, ended_at = ?, lease_expires = NULL, executor = ?,"
                " first_error = ?, log_path = ?, artifacts = ? WHERE id = ?",
                (
                    outcome,
                    now,
                    result.get("executor"),
                    result.get("first_error"),
                    result.get("log_path"),
                    json.dumps(result.get("artifacts", [])),
                    attempt_id,
                ),
            )
            tx.db.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?",
                (outcome, now, row["job_id"]),
            )
            wait = self._retry_wait(tx.db, row["job_id"], outcome)
            if wait is not None:
                self._new_attempt(tx.db, row["job_id"], now, "retry", not_before=now + wait)
        return Verdict(True)

    def _retry_wait(self, db: sqlite3.Connection, job_id: int, outcome: str) -> float | None:
        """Seconds until a job that just ended ``outcome`` is tried again, or None."""
        if self.retries is None or outcome not in HOST_PROBLEMS:
            return None
        # A manual retry (`kbo retry`) starts the count anew: automatic retries are counted
        # apart from the ones a maintainer asked for.
        infra_errors = db.execute(
            "SELECT COUNT(*) FROM attempts WHERE job_id = ? AND state = 'infra-error'"
            " AND number >= (SELECT COALESCE(MAX(number), 0) FROM attempts"
            "  WHERE job_id = ? AND retried_by IS NOT NULL)",
            (job_id, job_id),
        ).fetchone()[0]
        return self.retries.wait(outcome, int(infra_errors))

    @staticmethod
    def _attempt_row(db: sqlite3.Connection, attempt_id: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = db.execute(
            "SELECT a.*, j.current_attempt FROM attempts a JOIN jobs j ON j.id = a.job_id"
            " WHERE a.id = ?",
            (attempt_id,),
        ).fetchone()
        return row

    # -- maintainers' verbs ------------------------------------------------------------

    def cancel(self, job_ids: Iterable[int], by: str) -> Cancellation:
        """End each job that is queued or running (or whose retry waits) ``cancelled``, its
        current attempt with it: a claim of that attempt is refused, and so is its
        report. Jobs that have ended are left as they are. Cancelling twice changes
        nothing the second time."""
        now = time.time()
        cancelled: list[tuple[Job, str]] = []
        left: list[Job] = []
        with self.transaction() as tx:
            for job_id in job_ids:
                row = tx.db.execute(
                    "SELECT j.*, a.state AS attempt_state FROM jobs j"
                    " LEFT JOIN attempts a ON a.id = j.current_attempt WHERE j.id = ?",
                    (job_id,),
                ).fetchone()
                if row is None:
                    continue
                was = row["state"]
                waiting = was in HOST_PROBLEMS and row["attempt_state"] == "queued"
                if was not in IN_FLIGHT and not waiting:
                    left.append(Job.from_row(row))
                    continue
                tx.db.execute(
                    "UPDATE attempts SET state = 'cancelled', ended_at = ?, lease_expires = NULL,"
                    " first_error = ? WHERE id = ? AND state IN ('queued', 'running')",
                    (now, f"cancelled by {by}", row["current_attempt"]),
                )
                tx.db.execute(
                    "UPDATE jobs SET state = 'cancelled', updated_at = ? WHERE id = ?",
                    (now, job_id),
                )
                job = tx.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                cancelled.append((Job.from_row(job), was))
        return Cancellation(cancelled, left)

    def give_back(self, job_id: int, by: str, request_id: str) -> GiveBack:
        """A new attempt now for a job that ended (``RETRYABLE``), recorded as a manual
        retry by ``by``; a retry that waits (after an infra-error or dep-wait) is
        superseded. Refused for a job queued, running or succeeded. The same
        ``request_id`` again (a re-delivered request) makes no second attempt."""
        now = time.time()
        with self.transaction() as tx:
            done = tx.db.execute(
                "SELECT id FROM attempts WHERE retry_request = ?", (request_id,)
            ).fetchone()
            row = tx.db.execute(
                "SELECT j.*, a.state AS attempt_state FROM jobs j"
                " LEFT JOIN attempts a ON a.id = j.current_attempt WHERE j.id = ?",
                (job_id,),
            ).fetchone()
            if row is None:
                return GiveBack(None, f"no job {job_id}")
            if done is not None:
                return GiveBack(done[0], "already recorded", Job.from_row(row))
            if row["state"] not in RETRYABLE:
                what = "is " + row["state"] if row["state"] in IN_FLIGHT else row["state"]
                return GiveBack(
                    None,
                    f"job {job_id} {what}: only a job that ended {', '.join(RETRYABLE)} is retried",
                    Job.from_row(row),
                )
            if row["attempt_state"] == "queued":  # a retry waits: this one replaces it
                tx.db.execute(
                    "UPDATE attempts SET state = 'cancelled', ended_at = ?, first_error = ?"
                    " WHERE id = ?",
                    (now, f"superseded by a retry by {by}", row["current_attempt"]),
                )
            attempt_id = self._new_attempt(tx.db, job_id, now, "request")
            tx.db.execute(
                "UPDATE attempts SET retried_by = ?, retry_request = ? WHERE id = ?",
                (by, request_id, attempt_id),
            )
            tx.db.execute(
                "UPDATE jobs SET state = 'queued', updated_at = ? WHERE id = ?", (now, job_id)
            )
            job = tx.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return GiveBack(attempt_id, job=Job.from_row(job))

    # -- the worker inventory ------------------------------------------------------------

    def worker_announced(self, info: WorkerInfo) -> None:
        """Record a worker as it says it is (at start, and again while it lives); seen now."""
        with self.transaction() as tx:
            tx.db.execute(
                "INSERT INTO workers (name, host, arches, executors, slots, version, started_at,"
                " last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " host = excluded.host, arches = excluded.arches, executors = excluded.executors,"
                " slots = excluded.slots, version = excluded.version,"
                " started_at = excluded.started_at, last_seen = excluded.last_seen",
                (
                    info.name,
                    info.host,
                    json.dumps(info.arches),
                    json.dumps(info.executors),
                    info.slots,
                    info.version,
                    info.started_at,
                    time.time(),
                ),
            )

    def worker_seen(self, attempt_id: int, token: str) -> None:
        """A heartbeat of a running attempt: its worker was alive just now."""
        with self.transaction() as tx:
            tx.db.execute(
                "UPDATE workers SET last_seen = ? WHERE name = (SELECT worker FROM attempts"
                " WHERE id = ? AND token = ? AND state = 'running')",
                (time.time(), attempt_id, token),
            )

    # -- the lease sweep ---------------------------------------------------------------

    def expire_leases(self, max_attempts: int) -> list[int]:
        """Mark running attempts whose lease lapsed as lost; return new attempts to enqueue.
        A job whose leases lapsed ``max_attempts`` times since a run last asked for it
        ends ``lost``."""
        now = time.time()
        to_publish = []
        with self.transaction() as tx:
            db = tx.db
            expired = db.execute(
                "SELECT a.id, a.job_id, a.number, a.worker FROM attempts a"
                " WHERE a.state = 'running' AND a.lease_expires < ?",
                (now,),
            ).fetchall()
            for row in expired:
                error = f"lost: worker {row['worker']} stopped renewing its lease"
                db.execute(
                    "UPDATE attempts SET state = 'lost', ended_at = ?, first_error = ?"
                    " WHERE id = ?",
                    (now, error, row["id"]),
                )
                if self._lost_leases(db, row["job_id"]) < max_attempts:
                    db.execute(
                        "UPDATE jobs SET state = 'queued', updated_at = ? WHERE id = ?",
                        (now, row["job_id"]),
                    )
                    to_publish.append(self._new_attempt(db, row["job_id"], now, "lease"))
                else:
                    db.execute(
                        "UPDATE jobs SET state = 'lost', updated_at = ? WHERE id = ?",
                        (now, row["job_id"]),
                    )
        return to_publish

    @staticmethod
    def _lost_leases(db: sqlite3.Connection, job_id: int) -> int:
        """The job's attempts lost since a run last asked for it (that attempt included)."""
        return int(
            db.execute(
                "SELECT COUNT(*) FROM attempts WHERE job_id = ? AND state = 'lost' AND number >="
                " (SELECT COALESCE(MAX(number), 0) FROM attempts WHERE job_id = ?"
                " AND cause = 'request')",
                (job_id, job_id),
            ).fetchone()[0]
        )

    def unpublished(self, republish_after: float) -> list[int]:
        """Queued attempts never published, or published so long ago the message is gone;
        a retry only once it is due."""
        now = time.time()
        rows = self.db.execute(
            "SELECT a.id FROM attempts a JOIN jobs j ON j.current_attempt = a.id"
            " WHERE a.state = 'queued' AND (a.published_at IS NULL OR a.published_at < ?)"
            " AND (a.not_before IS NULL OR a.not_before <= ?)",
            (now - republish_after, now),
        ).fetchall()
        return [row[0] for row in rows]

    # -- bisections -------------------------------------------------------------------

    def start_bisection(self, b: Bisection) -> tuple[Bisection, bool]:
        """Record a bisection (``b.id`` is ignored) unless one searches the same job key
        from the same bad commit; that one, and whether this call made it."""
        with self.transaction() as tx:
            made = tx.db.execute(
                "INSERT OR IGNORE INTO bisections (source, recipe, arch, featureset, flavour,"
                " kernel_arch, good, bad, job_id, first_error, commits, max_steps, state,"
                " high, mail_id, started_by, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (
                    b.source,
                    b.recipe,
                    b.arch,
                    b.featureset,
                    b.flavour,
                    b.kernel_arch,
                    b.good,
                    b.bad,
                    b.job_id,
                    b.first_error,
                    json.dumps(b.commits),
                    b.max_steps,
                    b.bad,
                    b.mail_id,
                    b.started_by,
                    b.started_at,
                ),
            ).rowcount
            row = tx.db.execute(
                "SELECT * FROM bisections WHERE source = ? AND recipe = ? AND arch = ?"
                " AND featureset = ? AND flavour = ? AND bad = ?",
                (b.source, b.recipe, b.arch, b.featureset, b.flavour, b.bad),
            ).fetchone()
        return Bisection.from_row(row), bool(made)

    def bisection_progress(self, b: Bisection) -> bool:
        """Record where a running bisection is (its bounds, builds, skips, the build it
        waits for) and, once ``b.state`` is not running, its verdict; False when it had
        already ended (a repeated report changes nothing)."""
        with self.transaction() as tx:
            return bool(
                tx.db.execute(
                    "UPDATE bisections SET state = ?, steps = ?, low = ?, high = ?,"
                    " culprit = ?, skipped = ?, building = ?, ended_at = ?"
                    " WHERE id = ? AND state = 'running'",
                    (
                        b.state,
                        b.steps,
                        b.low,
                        b.high,
                        b.culprit,
                        json.dumps(b.skipped),
                        b.building,
                        b.ended_at,
                        b.id,
                    ),
                ).rowcount
            )

    def hold_mail(self, mail_id: int, until: float) -> bool:
        """Hold a pending mail not yet composed back until ``until`` (a bisection's
        wait); False when it is composed, sent or skipped already."""
        with self.transaction() as tx:
            return bool(
                tx.db.execute(
                    "UPDATE outbox SET due_at = MAX(due_at, ?) WHERE id = ?"
                    " AND state = 'pending' AND message IS NULL",
                    (until, mail_id),
                ).rowcount
            )

    def release_mail_with(self, mail_id: int, key: str, value: Any, now: float) -> bool:
        """Add ``key`` to a held mail's data and make it due now; False when it was
        composed (or sent) already: its text is fixed, and it goes as it is."""
        with self.transaction() as tx:
            row = tx.db.execute(
                "SELECT data FROM outbox WHERE id = ? AND state = 'pending' AND message IS NULL",
                (mail_id,),
            ).fetchone()
            if row is None:
                return False
            data = json.loads(row["data"]) | {key: value}
            tx.db.execute(
                "UPDATE outbox SET data = ?, due_at = MIN(due_at, ?) WHERE id = ?",
                (json.dumps(data), now, mail_id),
            )
        return True

    # -- the outbox --------------------------------------------------------------------

    def freeze_mail(self, mail_id: int, text: str) -> str:
        """Keep the first composition of a mail; return the text that will be sent."""
        with self.transaction() as tx:
            tx.db.execute(
                "UPDATE outbox SET message = ? WHERE id = ? AND message IS NULL", (text, mail_id)
            )
            row = tx.db.execute("SELECT message FROM outbox WHERE id = ?", (mail_id,)).fetchone()
        return str(row[0])

    def claim_mail(self, mail_id: int, sender: str, until: float) -> bool:
        """Take a pending mail for ``sender`` until ``until``: False while another sender
        holds it (one sender per mail), or once it is sent or skipped."""
        with self.transaction() as tx:
            return bool(
                tx.db.execute(
                    "UPDATE outbox SET claimed_by = ?, claim_expires = ? WHERE id = ?"
                    " AND state = 'pending' AND (claimed_by IS NULL OR claimed_by = ?"
                    " OR claim_expires < ?)",
                    (sender, until, mail_id, sender, time.time()),
                ).rowcount
            )

    def release_mail(self, mail_id: int, sender: str) -> None:
        with self.transaction() as tx:
            tx.db.execute(
                "UPDATE outbox SET claimed_by = NULL, claim_expires = NULL"
                " WHERE id = ? AND claimed_by = ?",
                (mail_id, sender),
            )

    def mail_sent(self, mail_id: int, problems: str | None) -> None:
        with self.transaction() as tx:
            tx.db.execute(
                "UPDATE outbox SET state = 'sent', sent_at = ?, last_error = ?,"
                " attempts = attempts + 1, claimed_by = NULL, claim_expires = NULL"
                " WHERE id = ?",
                (time.time(), problems, mail_id),
            )

    def mail_failed(self, mail_id: int, attempts: int, error: str, next_try: float) -> None:
        """A try that failed: noted on the mail, which is let go for its next try."""
        with self.transaction() as tx:
            tx.db.execute(
                "UPDATE outbox SET attempts = ?, last_error = ?, next_try = ?,"
                " claimed_by = NULL, claim_expires = NULL WHERE id = ?",
                (attempts, error, next_try, mail_id),
            )

    def mail_skipped(self, mail_id: int, reason: str) -> None:
        """A mail that can never go out (it cannot be composed, or every recipient is
        refused): kept with the reason, never tried again."""
        with self.transaction() as tx:
            tx.db.execute(
                "UPDATE outbox SET state = 'skipped', last_error = ?, claimed_by = NULL,"
                " claim_expires = NULL WHERE id = ? AND state = 'pending'",
                (reason, mail_id),
            )

    def mail_server_failed(self, server: str, failures: int, error: str, next_try: float) -> None:
        """The SMTP server failed ``failures`` tries in a row: nothing goes to it before
        ``next_try``."""
        with self.transaction() as tx:
            tx.db.execute(
                "INSERT INTO mail_servers (server, failures, next_try, last_error)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (server) DO UPDATE SET"
                " failures = excluded.failures, next_try = excluded.next_try,"
                " last_error = excluded.last_error",
                (server, failures, next_try, error),
            )

    def mail_server_ok(self, server: str) -> None:
        with self.transaction() as tx:
            tx.db.execute("DELETE FROM mail_servers WHERE server = ?", (server,))
