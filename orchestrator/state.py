"""kbo's own record of runs, jobs and attempts, in SQLite with WAL.

The coordinator is the only writer. Every transition checks the state it expects
inside one transaction, so a re-delivered message or a repeated report changes
nothing. A job is unique on (source, commit, recipe, arch, featureset, flavour).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import InfraError, UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    submitter TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    rev TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    recipe TEXT NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    recipe TEXT NOT NULL,
    arch TEXT NOT NULL,
    featureset TEXT NOT NULL,
    flavour TEXT NOT NULL,
    kernel_arch TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    current_attempt INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (source, commit_sha, recipe, arch, featureset, flavour)
);
CREATE INDEX IF NOT EXISTS jobs_by_arch ON jobs (source, recipe, arch);
CREATE TABLE IF NOT EXISTS run_jobs (
    run_id TEXT NOT NULL REFERENCES runs (id),
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    enqueued INTEGER NOT NULL,
    PRIMARY KEY (run_id, job_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    number INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'lost')),
    token TEXT,
    worker TEXT,
    worker_host TEXT,
    executor TEXT,
    created_at REAL NOT NULL,
    published_at REAL,
    started_at REAL,
    ended_at REAL,
    lease_expires REAL,
    first_error TEXT,
    log_path TEXT,
    artifacts TEXT NOT NULL DEFAULT '[]',
    UNIQUE (job_id, number)
);
CREATE INDEX IF NOT EXISTS attempts_by_state ON attempts (state);
CREATE TABLE IF NOT EXISTS alerts (
    source TEXT NOT NULL,
    recipe TEXT NOT NULL,
    arch TEXT NOT NULL,
    featureset TEXT NOT NULL,
    flavour TEXT NOT NULL,
    first_error TEXT NOT NULL,
    since_commit TEXT NOT NULL,
    PRIMARY KEY (source, recipe, arch, featureset, flavour)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('failure', 'fixed', 'digest')),
    fold_key TEXT,
    data TEXT NOT NULL,
    message TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent')),
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    next_try REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, due_at);
"""

TERMINAL = ("succeeded", "failed")


@dataclass(frozen=True)
class JobKey:
    source: str
    commit: str
    recipe: str
    arch: str
    featureset: str
    flavour: str
    kernel_arch: str | None = None

    @property
    def name(self) -> str:
        return f"{self.arch}_{self.featureset}_{self.flavour}"


@dataclass(frozen=True)
class Verdict:
    """The answer to a worker's claim or report: accepted, or refused and why."""

    accepted: bool
    reason: str = ""
    job: dict[str, Any] | None = None


class State:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise UserError(f"cannot open the state database: {e}", str(path)) from None

    def check_writable(self) -> None:
        """Fail now, in one line, rather than at the first report."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("ROLLBACK")
        except sqlite3.Error as e:
            raise UserError(f"the state database is not writable: {e}", str(self.path)) from None

    @classmethod
    def open_readonly(cls, path: Path) -> State:
        if not path.exists():
            raise UserError("no state database yet (nothing was ever submitted)", str(path))
        return cls(path)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise InfraError(f"cannot write the state database: {e}", str(self.path)) from None
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # -- submission ------------------------------------------------------------------

    def record_run(
        self, run: dict[str, str], keys: Iterable[JobKey], *, retry_failed: bool = True
    ) -> list[int]:
        """Get-or-create the run and its jobs; return the attempt ids to enqueue.

        A job already queued, running or done gains nothing. A failed job gains a new
        attempt when ``retry_failed``. Calling this twice for one run id is harmless.
        """
        now = time.time()
        to_publish: list[int] = []
        with self.transaction() as db:
            created = db.execute(
                "INSERT OR IGNORE INTO runs (id, created_at, submitter, reason, source, rev,"
                " commit_sha, recipe, version) VALUES (:id, :now, :submitter, :reason, :source,"
                " :rev, :commit, :recipe, :version)",
                run | {"now": now},
            ).rowcount
            if not created:
                return []
            for key in keys:
                job_id, attempt_id = self._ensure_job(db, key, now, retry_failed)
                db.execute(
                    "INSERT OR IGNORE INTO run_jobs (run_id, job_id, enqueued) VALUES (?, ?, ?)",
                    (run["id"], job_id, attempt_id is not None),
                )
                if attempt_id is not None:
                    to_publish.append(attempt_id)
        return to_publish

    def _ensure_job(
        self, db: sqlite3.Connection, key: JobKey, now: float, retry_failed: bool
    ) -> tuple[int, int | None]:
        row = db.execute(
            "SELECT id, state FROM jobs WHERE source = ? AND commit_sha = ? AND recipe = ?"
            " AND arch = ? AND featureset = ? AND flavour = ?",
            (key.source, key.commit, key.recipe, key.arch, key.featureset, key.flavour),
        ).fetchone()
        if row is None:
            job_id = db.execute(
                "INSERT INTO jobs (source, commit_sha, recipe, arch, featureset, flavour,"
                " kernel_arch, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                (
                    key.source,
                    key.commit,
                    key.recipe,
                    key.arch,
                    key.featureset,
                    key.flavour,
                    key.kernel_arch,
                    now,
                    now,
                ),
            ).lastrowid
            assert job_id is not None
            return job_id, self._new_attempt(db, job_id, now)
        if row["state"] == "failed" and retry_failed:
            db.execute(
                "UPDATE jobs SET state = 'queued', updated_at = ? WHERE id = ?", (now, row["id"])
            )
            return row["id"], self._new_attempt(db, row["id"], now)
        return row["id"], None

    def _new_attempt(self, db: sqlite3.Connection, job_id: int, now: float) -> int:
        number = db.execute(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE job_id = ?", (job_id,)
        ).fetchone()[0]
        attempt_id = db.execute(
            "INSERT INTO attempts (job_id, number, state, created_at) VALUES (?, ?, 'queued', ?)",
            (job_id, number, now),
        ).lastrowid
        assert attempt_id is not None
        db.execute("UPDATE jobs SET current_attempt = ? WHERE id = ?", (attempt_id, job_id))
        return attempt_id

    def mark_published(self, attempt_ids: Iterable[int]) -> None:
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "UPDATE attempts SET published_at = ? WHERE id = ? AND state = 'queued'",
                [(now, a) for a in attempt_ids],
            )

    def attempt_job_name(self, attempt_id: int) -> str | None:
        row = self.db.execute(
            "SELECT j.arch, j.featureset, j.flavour FROM attempts a JOIN jobs j ON j.id = a.job_id"
            " WHERE a.id = ?",
            (attempt_id,),
        ).fetchone()
        return None if row is None else f"{row[0]}_{row[1]}_{row[2]}"

    def attempt_arch(self, attempt_id: int) -> str:
        return str(
            self.db.execute(
                "SELECT j.arch FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.id = ?",
                (attempt_id,),
            ).fetchone()[0]
        )

    # -- worker reports ----------------------------------------------------------------

    def claim(self, attempt_id: int, token: str, worker: str, host: str, lease: float) -> Verdict:
        """A worker takes a queued attempt; anything else is refused, changing nothing."""
        now = time.time()
        with self.transaction() as db:
            row = self._attempt(db, attempt_id)
            if row is None:
                return Verdict(False, f"attempt {attempt_id} does not exist")
            if row["current_attempt"] != attempt_id:
                return Verdict(False, f"attempt {attempt_id} is superseded")
            if row["state"] != "queued":
                return Verdict(False, f"attempt {attempt_id} is {row['state']}, not queued")
            db.execute(
                "UPDATE attempts SET state = 'running', token = ?, worker = ?, worker_host = ?,"
                " started_at = ?, lease_expires = ? WHERE id = ?",
                (token, worker, host, now, now + lease, attempt_id),
            )
            db.execute(
                "UPDATE jobs SET state = 'running', updated_at = ? WHERE id = ?",
                (now, row["job_id"]),
            )
            job = dict(db.execute("SELECT * FROM jobs WHERE id = ?", (row["job_id"],)).fetchone())
        job["attempt"] = row["number"]
        return Verdict(True, job=job)

    def renew_lease(self, attempt_id: int, token: str, lease: float) -> bool:
        with self.transaction() as db:
            return bool(
                db.execute(
                    "UPDATE attempts SET lease_expires = ? WHERE id = ? AND token = ?"
                    " AND state = 'running'",
                    (time.time() + lease, attempt_id, token),
                ).rowcount
            )

    def finish(self, attempt_id: int, token: str, result: dict[str, Any]) -> Verdict:
        """Record the outcome of the attempt that owns its job; refuse any other report."""
        outcome = result.get("outcome")
        if outcome not in TERMINAL:
            return Verdict(False, f"unknown outcome {outcome!r}")
        now = time.time()
        with self.transaction() as db:
            row = self._attempt(db, attempt_id)
            if row is None:
                return Verdict(False, f"attempt {attempt_id} does not exist")
            if row["token"] != token:
                return Verdict(False, f"attempt {attempt_id} is not owned by this delivery")
            if row["state"] == outcome:
                return Verdict(True, "already recorded")
            if row["state"] != "running" or row["current_attempt"] != attempt_id:
                return Verdict(False, f"attempt {attempt_id} is {row['state']}; report refused")
            db.execute(
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
            db.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?",
                (outcome, now, row["job_id"]),
            )
        return Verdict(True)

    @staticmethod
    def _attempt(db: sqlite3.Connection, attempt_id: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = db.execute(
            "SELECT a.*, j.current_attempt FROM attempts a JOIN jobs j ON j.id = a.job_id"
            " WHERE a.id = ?",
            (attempt_id,),
        ).fetchone()
        return row

    # -- the lease sweep ---------------------------------------------------------------

    def expire_leases(self, max_attempts: int) -> list[int]:
        """Mark running attempts whose lease lapsed as lost; return new attempts to enqueue."""
        now = time.time()
        to_publish = []
        with self.transaction() as db:
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
                if row["number"] < max_attempts:
                    db.execute(
                        "UPDATE jobs SET state = 'queued', updated_at = ? WHERE id = ?",
                        (now, row["job_id"]),
                    )
                    to_publish.append(self._new_attempt(db, row["job_id"], now))
                else:
                    db.execute(
                        "UPDATE jobs SET state = 'failed', updated_at = ? WHERE id = ?",
                        (now, row["job_id"]),
                    )
        return to_publish

    def unpublished(self, republish_after: float) -> list[int]:
        """Queued attempts never published, or published so long ago the message is gone."""
        rows = self.db.execute(
            "SELECT a.id FROM attempts a JOIN jobs j ON j.current_attempt = a.id"
            " WHERE a.state = 'queued' AND (a.published_at IS NULL OR a.published_at < ?)",
            (time.time() - republish_after,),
        ).fetchall()
        return [row[0] for row in rows]

    # -- reading -----------------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        jobs = self.db.execute(
            "SELECT j.*, rj.enqueued, a.number AS attempt, a.worker, a.worker_host, a.executor,"
            " a.first_error, a.log_path, a.artifacts,"
            " (SELECT COUNT(*) FROM attempts WHERE job_id = j.id) AS attempts"
            " FROM run_jobs rj JOIN jobs j ON j.id = rj.job_id"
            " LEFT JOIN attempts a ON a.id = j.current_attempt"
            " WHERE rj.run_id = ? ORDER BY j.arch, j.featureset, j.flavour",
            (run_id,),
        ).fetchall()
        return dict(row) | {"jobs": [_job_json(j) for j in jobs]}

    def attempts(self, job_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM attempts WHERE job_id = ? ORDER BY number", (job_id,)
        ).fetchall()
        return [dict(r) for r in rows]

    def results(self, source: str, recipe: str) -> list[dict[str, Any]]:
        """Every job of one source and recipe, for the staleness computation."""
        rows = self.db.execute(
            "SELECT commit_sha, arch, featureset, flavour, state, updated_at FROM jobs"
            " WHERE source = ? AND recipe = ?",
            (source, recipe),
        ).fetchall()
        return [dict(r) for r in rows]


def _job_json(row: sqlite3.Row) -> dict[str, Any]:
    job = dict(row)
    job["artifacts"] = json.loads(job["artifacts"] or "[]")
    job["name"] = f"{job['arch']}_{job['featureset']}_{job['flavour']}"
    job["enqueued"] = bool(job["enqueued"])
    return job
