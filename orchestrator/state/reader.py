"""Reading kbo's state: the queries behind status, the digest, mail and run summaries.

Every query here is read-only and indexed: none reads the whole history. A reader opens
the database read-only, so ``kbo status`` can never change it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from kbo.errors import InfraError, UserError
from kbo.orchestrator.state import schema
from kbo.orchestrator.state.records import (
    Attempt,
    Bisection,
    CachedMatrix,
    HostProblem,
    Job,
    JobResult,
    OutboxMail,
    Run,
    RunJob,
    RunSummary,
    WorkerInfo,
    WorkerView,
    _json,
)
from kbo.packaging.matrix import job_key

# A cached matrix row: arch, featureset, flavour, kernel_arch, default_flavour.
MATRIX_FIELDS = 5
# SQLite's limit on bound parameters is 32,766; chunks of commits stay well below it.
_MAX_PARAMETERS = 900


class StateReader:
    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path) -> StateReader:
        """The database at ``path``, read-only. No file yet means nothing was ever
        recorded: the reader then answers from an empty, in-memory schema."""
        if not path.exists() and not path.is_symlink():
            db = _connect(":memory:", path)
            schema.migrate(db, path)
            return cls(db, path)
        if not path.exists():
            raise UserError("refusing the state database: a dangling symbolic link", str(path))
        schema.check_file(path)
        db = _connect(f"{path.resolve().as_uri()}?mode=ro", path, uri=True)
        version = schema.version_of(db, path)
        if version != schema.VERSION:
            raise UserError(
                f"the state database has schema {version}: run the coordinator once (in "
                f"embedded mode, any kbo submit or snapshot) to bring it to {schema.VERSION}",
                str(path),
            )
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    def _all(self, query: str, args: Sequence[object] = ()) -> list[sqlite3.Row]:
        try:
            return self.db.execute(query, args).fetchall()
        except sqlite3.Error as e:
            raise InfraError(f"cannot read the state database: {e}", str(self.path)) from None

    def _one(self, query: str, args: Sequence[object] = ()) -> sqlite3.Row | None:
        rows = self._all(query, args)
        return rows[0] if rows else None

    # -- runs, jobs, attempts --------------------------------------------------------

    def run(self, run_id: str) -> RunSummary | None:
        row = self._one("SELECT * FROM runs WHERE id = ?", (run_id,))
        if row is None:
            return None
        # e_id: the attempt that ended as the job's state says (while a retry waits, the
        # current attempt is that retry, which has no error to tell yet).
        jobs = self._all(
            "SELECT j.*, rj.enqueued, a.id AS a_id,"
            " (SELECT COUNT(*) FROM attempts WHERE job_id = j.id) AS attempt_count,"
            " (SELECT id FROM attempts WHERE job_id = j.id AND state = j.state"
            "  ORDER BY number DESC LIMIT 1) AS e_id"
            " FROM run_jobs rj JOIN jobs j ON j.id = rj.job_id"
            " LEFT JOIN attempts a ON a.id = j.current_attempt"
            " WHERE rj.run_id = ? ORDER BY j.arch, j.featureset, j.flavour",
            (run_id,),
        )
        attempts = self._attempts_by_id(
            i for r in jobs for i in (r["a_id"], r["e_id"]) if i is not None
        )
        return RunSummary(
            Run.from_row(row),
            [
                RunJob(
                    Job.from_row(r),
                    attempts.get(r["a_id"]),
                    bool(r["enqueued"]),
                    r["attempt_count"],
                    attempts.get(r["e_id"]) if r["e_id"] is not None else None,
                )
                for r in jobs
            ],
        )

    def jobs_of_run(self, run_id: str) -> list[int] | None:
        """The ids of a run's jobs; None when there is no such run."""
        if self._one("SELECT 1 FROM runs WHERE id = ?", (run_id,)) is None:
            return None
        rows = self._all("SELECT job_id FROM run_jobs WHERE run_id = ? ORDER BY job_id", (run_id,))
        return [int(r[0]) for r in rows]

    def recent_runs(self, limit: int) -> list[Run]:
        """The newest ``limit`` runs, newest first."""
        rows = self._all("SELECT * FROM runs ORDER BY created_at DESC, id LIMIT ?", (limit,))
        return [Run.from_row(r) for r in rows]

    def attempts_of_job(self, job_id: int) -> list[Attempt]:
        """Every attempt at a job, first first."""
        rows = self._all("SELECT * FROM attempts WHERE job_id = ? ORDER BY number", (job_id,))
        return [Attempt.from_row(r) for r in rows]

    def _attempts_by_id(self, ids: Iterable[int]) -> dict[int, Attempt]:
        wanted = list(ids)
        found: dict[int, Attempt] = {}
        for start in range(0, len(wanted), _MAX_PARAMETERS):
            chunk = wanted[start : start + _MAX_PARAMETERS]
            query = f"SELECT * FROM attempts WHERE id IN ({_marks(chunk)})"  # noqa: S608
            for row in self._all(query, chunk):
                found[row["id"]] = Attempt.from_row(row)
        return found

    def job(self, job_id: int) -> Job | None:
        row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else Job.from_row(row)

    def attempt(self, attempt_id: int) -> Attempt | None:
        row = self._one("SELECT * FROM attempts WHERE id = ?", (attempt_id,))
        return None if row is None else Attempt.from_row(row)

    def job_of_attempt(self, attempt_id: int) -> Job | None:
        row = self._one(
            "SELECT j.* FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.id = ?",
            (attempt_id,),
        )
        return None if row is None else Job.from_row(row)

    def version_of_job(self, job_id: int) -> str | None:
        """The package version the job's first run recorded (from debian/changelog)."""
        row = self._one(
            "SELECT r.version FROM runs r JOIN run_jobs rj ON rj.run_id = r.id"
            " WHERE rj.job_id = ? LIMIT 1",
            (job_id,),
        )
        return None if row is None else str(row[0])

    def successes(self, job: Job, limit: int) -> list[str]:
        """The commits of the newest ``limit`` other successes of the job's key and recipe,
        newest first (by time: which of them precede the job's commit is git's to say)."""
        rows = self._all(
            "SELECT commit_sha FROM jobs WHERE source = ? AND recipe = ? AND arch = ?"
            " AND featureset = ? AND flavour = ? AND state = 'succeeded' AND id != ?"
            " ORDER BY updated_at DESC LIMIT ?",
            (job.source, job.recipe, job.arch, job.featureset, job.flavour, job.id, limit),
        )
        return [str(row[0]) for row in rows]

    def attempts_by_id(self, ids: Iterable[int]) -> dict[int, Attempt]:
        """These attempts, by id; ids that name none are left out."""
        return self._attempts_by_id(ids)

    def history_of_key(self, job: Job, limit: int) -> list[tuple[Job, Attempt]]:
        """The newest ``limit`` attempts at the job's key and recipe, at any commit,
        newest first, each with its job (the dashboard's history of a job)."""
        rows = self._all(
            "SELECT j.*, a.id AS a_id FROM jobs j JOIN attempts a ON a.job_id = j.id"
            " WHERE j.source = ? AND j.recipe = ? AND j.arch = ? AND j.featureset = ?"
            " AND j.flavour = ? ORDER BY a.created_at DESC, a.id DESC LIMIT ?",
            (job.source, job.recipe, job.arch, job.featureset, job.flavour, limit),
        )
        attempts = self._attempts_by_id(r["a_id"] for r in rows)
        return [(Job.from_row(r), attempts[r["a_id"]]) for r in rows]

    def jobs_at(
        self, source: str, recipe: str, arches: Sequence[str], commits: Sequence[str]
    ) -> list[Job]:
        """The jobs of these arches at these commits, as ``results_at`` finds them."""
        found: list[Job] = []
        step = max(1, _MAX_PARAMETERS - len(arches))
        for start in range(0, len(commits), step):
            chunk = list(commits[start : start + step])
            query = (
                "SELECT * FROM jobs"  # noqa: S608
                f" WHERE source = ? AND recipe = ? AND arch IN ({_marks(arches)})"
                f" AND commit_sha IN ({_marks(chunk)})"
            )
            found += [Job.from_row(r) for r in self._all(query, (source, recipe, *arches, *chunk))]
        return found

    # -- standings ---------------------------------------------------------------------

    def results_at(
        self, source: str, recipe: str, arches: Sequence[str], commits: Sequence[str]
    ) -> list[JobResult]:
        """The jobs of these arches at these commits: one index lookup per pair."""
        found: list[JobResult] = []
        step = max(1, _MAX_PARAMETERS - len(arches))
        for start in range(0, len(commits), step):
            chunk = list(commits[start : start + step])
            query = (
                "SELECT commit_sha, arch, featureset, flavour, state FROM jobs"  # noqa: S608
                f" WHERE source = ? AND recipe = ? AND arch IN ({_marks(arches)})"
                f" AND commit_sha IN ({_marks(chunk)})"
            )
            rows = self._all(query, (source, recipe, *arches, *chunk))
            found += [JobResult(*r) for r in rows]
        return found

    def attempt_at(
        self, source: str, recipe: str, arch: str, featureset: str, flavour: str, commit: str
    ) -> Attempt | None:
        """The current attempt of one job: the unique key, so one index lookup."""
        row = self._one(
            "SELECT a.* FROM jobs j JOIN attempts a ON a.id = j.current_attempt"
            " WHERE j.source = ? AND j.commit_sha = ? AND j.recipe = ? AND j.arch = ?"
            " AND j.featureset = ? AND j.flavour = ?",
            (source, commit, recipe, arch, featureset, flavour),
        )
        return None if row is None else Attempt.from_row(row)

    def host_problem_at(
        self, source: str, recipe: str, arch: str, featureset: str, flavour: str, commit: str
    ) -> HostProblem | None:
        """Why a job whose host failed it (infra-error), lacks its Build-Depends
        (dep-wait) or whose workers stopped renewing its lease (lost) is not built: its
        newest such attempt, and when it is tried again."""
        row = self._one(
            "SELECT j.state, a.first_error, a.worker, a.log_path, c.state AS c_state,"
            " c.not_before, (SELECT COUNT(*) FROM attempts WHERE job_id = j.id"
            "  AND state = 'infra-error') AS infra_errors"
            " FROM jobs j JOIN attempts c ON c.id = j.current_attempt"
            " JOIN attempts a ON a.job_id = j.id AND a.state = j.state"
            " WHERE j.source = ? AND j.commit_sha = ? AND j.recipe = ? AND j.arch = ?"
            " AND j.featureset = ? AND j.flavour = ?"
            " AND j.state IN ('infra-error', 'dep-wait', 'lost')"
            " ORDER BY a.number DESC LIMIT 1",
            (source, commit, recipe, arch, featureset, flavour),
        )
        if row is None:
            return None
        return HostProblem(
            state=row["state"],
            error=row["first_error"],
            worker=row["worker"],
            log=row["log_path"],
            retry_at=row["not_before"] if row["c_state"] == "queued" else None,
            infra_errors=row["infra_errors"],
        )

    def failed_builds_at(
        self, source: str, recipe: str, commit: str, arches: Sequence[str]
    ) -> dict[tuple[str, str, str], int]:
        """For each job of these arches that failed at this commit, how many of its builds
        ended failed (infra-errors, dep-waits and lost leases are not counted)."""
        query = (
            "SELECT j.arch, j.featureset, j.flavour, COUNT(a.id) FROM jobs j"  # noqa: S608
            " JOIN attempts a ON a.job_id = j.id AND a.state = 'failed'"
            f" WHERE j.source = ? AND j.recipe = ? AND j.arch IN ({_marks(arches)})"
            " AND j.commit_sha = ? AND j.state = 'failed' GROUP BY j.id"
        )
        rows = self._all(query, (source, recipe, *arches, commit))
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}

    def has_results(self, source: str, recipe: str, arch: str) -> bool:
        return (
            self._one(
                "SELECT 1 FROM jobs WHERE source = ? AND recipe = ? AND arch = ? LIMIT 1",
                (source, recipe, arch),
            )
            is not None
        )

    def in_flight(self, source: str, recipe: str) -> dict[str, int]:
        """Per arch, the jobs of the recipe queued or running, at any commit."""
        # Counted here, not with GROUP BY arch: SQLite then walks jobs_by_commit, already
        # in arch order, over every job of the recipe (80 ms at 100,000 jobs) instead of
        # the partial index jobs_in_flight, which holds only the jobs in flight.
        rows = self._all(
            "SELECT arch FROM jobs WHERE source = ? AND recipe = ?"
            " AND state IN ('queued', 'running')",
            (source, recipe),
        )
        return dict(Counter(str(row[0]) for row in rows))

    def runs_in_flight(self, source: str, commit: str, recipes: Sequence[str]) -> list[str]:
        """The runs with jobs of these recipes at this commit still queued or running."""
        rows = self._all(
            "SELECT DISTINCT rj.run_id FROM run_jobs rj JOIN jobs j ON j.id = rj.job_id"  # noqa: S608
            f" WHERE j.source = ? AND j.commit_sha = ? AND j.recipe IN ({_marks(recipes)})"
            " AND j.state IN ('queued', 'running') ORDER BY rj.run_id",
            (source, commit, *recipes),
        )
        return [row[0] for row in rows]

    def matrix(self, source: str, commit: str) -> CachedMatrix | None:
        row = self._one(
            "SELECT version, jobs FROM matrices WHERE source = ? AND commit_sha = ? AND format = ?",
            (source, commit, schema.MATRIX_FORMAT),
        )
        if row is None:
            return None
        try:
            jobs = [tuple(j) for j in json.loads(row["jobs"])]
        except (ValueError, TypeError):
            return None  # a damaged cache row: the matrix is read from git again
        if not all(
            len(j) == MATRIX_FIELDS and all(isinstance(f, str) for f in j[:3]) for j in jobs
        ):
            return None
        return CachedMatrix(row["version"], jobs)

    # -- workers -----------------------------------------------------------------------

    def workers(self, infra_since: float) -> list[WorkerView]:
        """Every worker that announced itself, by name, with the job keys it builds now
        and how many of its attempts ended infra-error since ``infra_since``."""
        running: dict[str, list[str]] = {}
        for row in self._all(
            "SELECT a.worker, j.arch, j.featureset, j.flavour FROM attempts a"
            " JOIN jobs j ON j.id = a.job_id WHERE a.state = 'running' ORDER BY a.started_at"
        ):
            key = job_key(row["arch"], row["featureset"], row["flavour"])
            running.setdefault(row["worker"], []).append(key)
        errors = {
            row[0]: int(row[1])
            for row in self._all(
                "SELECT worker, COUNT(*) FROM attempts WHERE state = 'infra-error'"
                " AND ended_at >= ? GROUP BY worker",
                (infra_since,),
            )
        }
        return [
            WorkerView(
                info := WorkerInfo.from_row(row),
                running.get(info.name, []),
                errors.get(info.name, 0),
            )
            for row in self._all("SELECT * FROM workers ORDER BY name")
        ]

    def arches_served(self, seen_since: float) -> set[str]:
        """The arches of the workers seen since ``seen_since``."""
        rows = self._all("SELECT name, arches FROM workers WHERE last_seen >= ?", (seen_since,))
        return {
            arch for row in rows for arch in _json(row["arches"], f"worker {row['name']}", list)
        }

    # -- bisections and timeouts ---------------------------------------------------

    def bisection(self, bisection_id: int) -> Bisection | None:
        row = self._one("SELECT * FROM bisections WHERE id = ?", (bisection_id,))
        return None if row is None else Bisection.from_row(row)

    def bisection_of(self, job: Job) -> Bisection | None:
        """The bisection that searches for what broke ``job`` (its commit is the bad one)."""
        row = self._one(
            "SELECT * FROM bisections WHERE source = ? AND recipe = ? AND arch = ?"
            " AND featureset = ? AND flavour = ? AND bad = ?",
            (job.source, job.recipe, job.arch, job.featureset, job.flavour, job.commit),
        )
        return None if row is None else Bisection.from_row(row)

    def bisection_holding(self, mail_id: int) -> Bisection | None:
        """The bisection that holds this failure mail back, if one does."""
        row = self._one("SELECT * FROM bisections WHERE mail_id = ? LIMIT 1", (mail_id,))
        return None if row is None else Bisection.from_row(row)

    def bisections_of_key(self, job: Job) -> list[Bisection]:
        """The running bisections of the job's key and recipe."""
        rows = self._all(
            "SELECT * FROM bisections WHERE source = ? AND recipe = ? AND arch = ?"
            " AND featureset = ? AND flavour = ? AND state = 'running' ORDER BY id",
            (job.source, job.recipe, job.arch, job.featureset, job.flavour),
        )
        return [Bisection.from_row(r) for r in rows]

    def bisections(self, *, running_only: bool) -> list[Bisection]:
        where = "WHERE state = 'running'" if running_only else ""
        rows = self._all(f"SELECT * FROM bisections {where} ORDER BY id")  # noqa: S608
        return [Bisection.from_row(r) for r in rows]

    def key_results(self, b: Bisection) -> dict[str, tuple[str, str | None, str | None]]:
        """For each commit of the bisection with a job of its key: the job's state, its
        current attempt's state, and the first error of its newest failed attempt."""
        found: dict[str, tuple[str, str | None, str | None]] = {}
        for start in range(0, len(b.commits), _MAX_PARAMETERS):
            chunk = b.commits[start : start + _MAX_PARAMETERS]
            query = (
                "SELECT j.commit_sha, j.state, c.state AS c_state,"  # noqa: S608
                " (SELECT first_error FROM attempts WHERE job_id = j.id AND state = 'failed'"
                "  ORDER BY number DESC LIMIT 1) AS error"
                " FROM jobs j LEFT JOIN attempts c ON c.id = j.current_attempt"
                " WHERE j.source = ? AND j.recipe = ? AND j.arch = ? AND j.featureset = ?"
                f" AND j.flavour = ? AND j.commit_sha IN ({_marks(chunk)})"
            )
            args = (b.source, b.recipe, b.arch, b.featureset, b.flavour, *chunk)
            for row in self._all(query, args):
                found[row["commit_sha"]] = (row["state"], row["c_state"], row["error"])
        return found

    def bisection_builds(self, bisection_id: int) -> int:
        """The builds a bisection queued: jobs its runs (reason "bisect N") enqueued."""
        row = self._one(
            "SELECT COUNT(*) FROM runs r JOIN run_jobs rj ON rj.run_id = r.id"
            " WHERE r.reason = ? AND rj.enqueued = 1",
            (f"bisect {bisection_id}",),
        )
        return 0 if row is None else int(row[0])

    def bisecting(self, job_id: int) -> bool:
        """Whether the run that last queued the job is a bisection's: its result is the
        bisection's to read, never mailed."""
        row = self._one(
            "SELECT r.reason FROM run_jobs rj JOIN runs r ON r.id = rj.run_id"
            " WHERE rj.job_id = ? AND rj.enqueued = 1 ORDER BY r.created_at DESC LIMIT 1",
            (job_id,),
        )
        return row is not None and str(row[0]).startswith("bisect ")

    def build_durations(self, job: Job, limit: int) -> list[tuple[str, float]]:
        """The executor and duration of the newest ``limit`` successful builds of the
        job's key and recipe (other commits included), newest first."""
        rows = self._all(
            "SELECT a.executor, a.ended_at - a.started_at FROM attempts a"
            " JOIN jobs j ON j.id = a.job_id WHERE j.source = ? AND j.recipe = ?"
            " AND j.arch = ? AND j.featureset = ? AND j.flavour = ? AND a.state = 'succeeded'"
            " AND a.executor IS NOT NULL AND a.started_at IS NOT NULL"
            " ORDER BY a.ended_at DESC LIMIT ?",
            (job.source, job.recipe, job.arch, job.featureset, job.flavour, limit),
        )
        return [(str(r[0]), float(r[1])) for r in rows if r[1] is not None]

    # -- mail ------------------------------------------------------------------------

    def due_mail(self, now: float) -> list[OutboxMail]:
        """The pending mails that are due, oldest first: the order they are sent in."""
        rows = self._all(
            "SELECT * FROM outbox WHERE state = 'pending' AND due_at <= ? ORDER BY id", (now,)
        )
        return [OutboxMail.from_row(r) for r in rows]

    def outbox(self, *, include_sent: bool) -> list[OutboxMail]:
        """The mails not sent (pending, or skipped with the reason), or all of them."""
        where = "" if include_sent else "WHERE state != 'sent'"
        rows = self._all(f"SELECT * FROM outbox {where} ORDER BY id")  # noqa: S608
        return [OutboxMail.from_row(r) for r in rows]

    def mail(self, mail_id: int) -> OutboxMail | None:
        row = self._one("SELECT * FROM outbox WHERE id = ?", (mail_id,))
        return None if row is None else OutboxMail.from_row(row)

    def mail_server(self, server: str) -> tuple[int, float]:
        """How many tries in a row failed on this SMTP server, and when the next is due."""
        row = self._one("SELECT failures, next_try FROM mail_servers WHERE server = ?", (server,))
        return (0, 0.0) if row is None else (int(row[0]), float(row[1]))

    def last_digest_at(self) -> float | None:
        row = self._one("SELECT MAX(created_at) FROM outbox WHERE kind = 'digest'")
        return None if row is None or row[0] is None else float(row[0])


def _marks(values: Sequence[object]) -> str:
    """``?, ?, ?``: one placeholder per value, for ``IN (...)``."""
    return ", ".join("?" * len(values))


def _connect(target: str, path: Path, *, uri: bool = False) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(target, isolation_level=None, timeout=30, uri=uri)
    except sqlite3.Error as e:  # a path that cannot hold a database: the setting is wrong
        raise UserError(f"cannot open the state database: {e}", str(path)) from None
    db.row_factory = sqlite3.Row
    return db
