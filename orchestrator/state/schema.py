"""The state database's schema, its version, and how an older database is brought up to it.

A kbo database says it is one: SQLite's ``application_id`` holds ``APPLICATION_ID`` and
``user_version`` the schema version. Databases written before versioning carry neither,
and are recognised by their tables. Anything else (an empty or truncated file, another
program's database, a newer kbo's) is refused in one line and never treated as empty.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kbo.errors import UserError

APPLICATION_ID = 0x6B626F00  # "kbo\0"
VERSION = 10
# How the matrices table stores a commit's jobs; a row of another format is read again.
MATRIX_FORMAT = 1

# Version 1: the schema kbo had before it was versioned.
_V1 = """
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

# MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS = {
    # Standings read the jobs near HEAD by commit, not every job of the recipe; the matrix
    # of each planned commit is kept, so no reader parses an old commit's debian/config.
    1: """
DROP INDEX IF EXISTS jobs_by_arch;
CREATE INDEX jobs_by_commit ON jobs (source, recipe, arch, commit_sha);
CREATE INDEX jobs_in_flight ON jobs (source, recipe) WHERE state IN ('queued', 'running');
CREATE INDEX outbox_by_kind ON outbox (kind, created_at);
CREATE TABLE matrices (
    source TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    format INTEGER NOT NULL,
    version TEXT NOT NULL,
    jobs TEXT NOT NULL,
    PRIMARY KEY (source, commit_sha)
);
""",
    # Where a running build is, from its worker's heartbeats, for waiting clients.
    2: """
ALTER TABLE attempts ADD COLUMN stage TEXT;
""",
    # Builds end four ways (kbo.orchestrator.state.records.OUTCOMES): the host's failures
    # (infra-error) and missing Build-Depends (dep-wait) are told apart from the commit's
    # (failed), and their retry waits until ``not_before``. SQLite cannot change a CHECK
    # constraint: both tables are made anew and filled from the old ones (foreign keys
    # are off during migrations, see ``migrate``).
    3: """
CREATE TABLE jobs_v4 (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    recipe TEXT NOT NULL,
    arch TEXT NOT NULL,
    featureset TEXT NOT NULL,
    flavour TEXT NOT NULL,
    kernel_arch TEXT,
    state TEXT NOT NULL CHECK (state IN
        ('queued', 'running', 'succeeded', 'failed', 'infra-error', 'dep-wait')),
    current_attempt INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (source, commit_sha, recipe, arch, featureset, flavour)
);
INSERT INTO jobs_v4 (id, source, commit_sha, recipe, arch, featureset, flavour, kernel_arch,
    state, current_attempt, created_at, updated_at)
    SELECT id, source, commit_sha, recipe, arch, featureset, flavour, kernel_arch,
    state, current_attempt, created_at, updated_at FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v4 RENAME TO jobs;
CREATE INDEX jobs_by_commit ON jobs (source, recipe, arch, commit_sha);
CREATE INDEX jobs_in_flight ON jobs (source, recipe) WHERE state IN ('queued', 'running');
CREATE TABLE attempts_v4 (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    number INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('queued', 'running', 'succeeded', 'failed', 'infra-error', 'dep-wait', 'lost')),
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
    stage TEXT,
    not_before REAL,
    UNIQUE (job_id, number)
);
INSERT INTO attempts_v4 (id, job_id, number, state, token, worker, worker_host, executor,
    created_at, published_at, started_at, ended_at, lease_expires, first_error, log_path,
    artifacts, stage)
    SELECT id, job_id, number, state, token, worker, worker_host, executor,
    created_at, published_at, started_at, ended_at, lease_expires, first_error, log_path,
    artifacts, stage FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_v4 RENAME TO attempts;
CREATE INDEX attempts_by_state ON attempts (state);
""",
    # The outbox: a row is claimed by one sender before it is sent (``claimed_by``, until
    # ``claim_expires``, so a sender that died lets go); a mail that cannot be composed or
    # delivered is 'skipped' with its reason in ``last_error``; the backoff after a
    # failure is kept per SMTP server (``mail_servers``), so mails go out in order.
    4: """
CREATE TABLE outbox_v5 (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('failure', 'fixed', 'digest')),
    fold_key TEXT,
    data TEXT NOT NULL,
    message TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'skipped')),
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    next_try REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL,
    claimed_by TEXT,
    claim_expires REAL
);
INSERT INTO outbox_v5 (id, kind, fold_key, data, message, state, created_at, due_at, next_try,
    attempts, last_error, sent_at)
    SELECT id, kind, fold_key, data, message, state, created_at, due_at, next_try,
    attempts, last_error, sent_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v5 RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (state, due_at);
CREATE INDEX outbox_by_kind ON outbox (kind, created_at);
CREATE TABLE mail_servers (
    server TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    last_error TEXT
);
""",
    # Maintainers' verbs. ``kbo cancel`` ends a queued or running job ``cancelled`` (its
    # attempt too: a claim or report of it is refused); ``kbo retry`` gives a job back: a
    # new attempt, recorded with who asked (``retried_by``) and the request that made it
    # (``retry_request``: a re-delivered request makes none). Both tables are made anew
    # for their CHECK constraints, as in 3 -> 4. The worker inventory: each worker as it
    # announced itself, and when it was last seen (`kbo workers`, "no worker" in
    # `kbo status`).
    5: """
CREATE TABLE jobs_v6 (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    recipe TEXT NOT NULL,
    arch TEXT NOT NULL,
    featureset TEXT NOT NULL,
    flavour TEXT NOT NULL,
    kernel_arch TEXT,
    state TEXT NOT NULL CHECK (state IN
        ('queued', 'running', 'succeeded', 'failed', 'infra-error', 'dep-wait', 'cancelled')),
    current_attempt INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (source, commit_sha, recipe, arch, featureset, flavour)
);
INSERT INTO jobs_v6 SELECT id, source, commit_sha, recipe, arch, featureset, flavour,
    kernel_arch, state, current_attempt, created_at, updated_at FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v6 RENAME TO jobs;
CREATE INDEX jobs_by_commit ON jobs (source, recipe, arch, commit_sha);
CREATE INDEX jobs_in_flight ON jobs (source, recipe) WHERE state IN ('queued', 'running');
CREATE TABLE attempts_v6 (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    number INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed',
        'infra-error', 'dep-wait', 'lost', 'cancelled')),
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
    stage TEXT,
    not_before REAL,
    retried_by TEXT,
    retry_request TEXT UNIQUE,
    UNIQUE (job_id, number)
);
INSERT INTO attempts_v6 (id, job_id, number, state, token, worker, worker_host, executor,
    created_at, published_at, started_at, ended_at, lease_expires, first_error, log_path,
    artifacts, stage, not_before)
    SELECT id, job_id, number, state, token, worker, worker_host, executor,
    created_at, published_at, started_at, ended_at, lease_expires, first_error, log_path,
    artifacts, stage, not_before FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_v6 RENAME TO attempts;
CREATE INDEX attempts_by_state ON attempts (state);
CREATE INDEX attempts_by_worker ON attempts (worker, state, ended_at);
CREATE TABLE workers (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    arches TEXT NOT NULL,
    executors TEXT NOT NULL,
    slots INTEGER NOT NULL,
    version TEXT NOT NULL,
    started_at REAL NOT NULL,
    last_seen REAL NOT NULL
);
""",
    # A job may end two more ways: ``superseded`` (still queued when a newer commit of its
    # job key was queued: never built) and ``lost`` (its leases lapsed ``max_attempts``
    # times); an attempt may be superseded too. ``cause`` says why an attempt was made:
    # 'request' (a submission, a snapshot or `kbo retry`), 'lease' (the one before it was
    # lost) or 'retry' (after an infra-error or dep-wait), so lost leases are counted per
    # request. Both tables are made anew for their CHECK constraints, as in 3 -> 4.
    6: """
CREATE TABLE jobs_v7 (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    recipe TEXT NOT NULL,
    arch TEXT NOT NULL,
    featureset TEXT NOT NULL,
    flavour TEXT NOT NULL,
    kernel_arch TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed',
        'infra-error', 'dep-wait', 'cancelled', 'lost', 'superseded')),
    current_attempt INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (source, commit_sha, recipe, arch, featureset, flavour)
);
INSERT INTO jobs_v7 SELECT id, source, commit_sha, recipe, arch, featureset, flavour,
    kernel_arch, state, current_attempt, created_at, updated_at FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v7 RENAME TO jobs;
CREATE INDEX jobs_by_commit ON jobs (source, recipe, arch, commit_sha);
CREATE INDEX jobs_in_flight ON jobs (source, recipe) WHERE state IN ('queued', 'running');
CREATE TABLE attempts_v7 (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    number INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed',
        'infra-error', 'dep-wait', 'lost', 'cancelled', 'superseded')),
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
    stage TEXT,
    not_before REAL,
    retried_by TEXT,
    retry_request TEXT UNIQUE,
    cause TEXT,
    UNIQUE (job_id, number)
);
INSERT INTO attempts_v7 (id, job_id, number, state, token, worker, worker_host, executor,
    created_at, published_at, started_at, ended_at, lease_expires, first_error, log_path,
    artifacts, stage, not_before, retried_by, retry_request)
    SELECT id, job_id, number, state, token, worker, worker_host, executor,
    created_at, published_at, started_at, ended_at, lease_expires, first_error, log_path,
    artifacts, stage, not_before, retried_by, retry_request FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_v7 RENAME TO attempts;
CREATE INDEX attempts_by_state ON attempts (state);
CREATE INDEX attempts_by_worker ON attempts (worker, state, ended_at);
""",
    # Host alerts: a mail of kind 'host' tells the admins that one host failed builds
    # repeatedly (infra-error); its fold key names the host, so it is sent once a day.
    # The outbox is made anew for its CHECK constraint, as in 4 -> 5.
    7: """
CREATE TABLE outbox_v8 (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('failure', 'fixed', 'digest', 'host')),
    fold_key TEXT,
    data TEXT NOT NULL,
    message TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'skipped')),
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    next_try REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL,
    claimed_by TEXT,
    claim_expires REAL
);
INSERT INTO outbox_v8 SELECT id, kind, fold_key, data, message, state, created_at, due_at,
    next_try, attempts, last_error, sent_at, claimed_by, claim_expires FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v8 RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (state, due_at);
CREATE INDEX outbox_by_kind ON outbox (kind, created_at);
CREATE INDEX attempts_by_host ON attempts (worker_host, state, ended_at);
""",
    # Who may use `kbo web`: one token per name, kept only as the SHA-256 of its secret
    # (``kbo.orchestrator.state.tokens``). ``role`` says what it may do; 'worker' is
    # allowed already so that a worker identity (a token per build host, limited to the
    # arches in ``arches``) needs no table made anew. A revoked token keeps its row
    # (``revoked_at``): the runs it submitted still name it. Runs are listed newest first.
    8: """
CREATE INDEX runs_by_time ON runs (created_at);
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('maintainer', 'admin', 'worker')),
    hash TEXT NOT NULL UNIQUE,
    arches TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    revoked_at REAL
);
""",
    # Bisections: the first bad commit of a job key between a good and a bad commit,
    # searched with builds (``orchestrator/bisect.py``); ``mail_id`` is the failure mail
    # it holds back until it is done. A mail of kind 'culprit' names the first bad
    # commit when the failure mail went first. The outbox is made anew for its CHECK
    # constraint, as in 7 -> 8.
    9: """
CREATE TABLE IF NOT EXISTS bisections (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    recipe TEXT NOT NULL,
    arch TEXT NOT NULL,
    featureset TEXT NOT NULL,
    flavour TEXT NOT NULL,
    kernel_arch TEXT,
    good TEXT NOT NULL,
    bad TEXT NOT NULL,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    first_error TEXT,
    commits TEXT NOT NULL,
    max_steps INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'found', 'skipped', 'gave-up')),
    steps INTEGER NOT NULL DEFAULT 0,
    low TEXT,
    high TEXT,
    culprit TEXT,
    skipped TEXT NOT NULL DEFAULT '[]',
    building TEXT,
    mail_id INTEGER,
    started_by TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    UNIQUE (source, recipe, arch, featureset, flavour, bad)
);
CREATE INDEX IF NOT EXISTS bisections_by_key ON bisections
    (source, recipe, arch, featureset, flavour, state);
CREATE TABLE outbox_v10 (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('failure', 'fixed', 'digest', 'host', 'culprit')),
    fold_key TEXT,
    data TEXT NOT NULL,
    message TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'skipped')),
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    next_try REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL,
    claimed_by TEXT,
    claim_expires REAL
);
INSERT INTO outbox_v10 SELECT id, kind, fold_key, data, message, state, created_at, due_at,
    next_try, attempts, last_error, sent_at, claimed_by, claim_expires FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v10 RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (state, due_at);
CREATE INDEX outbox_by_kind ON outbox (kind, created_at);
""",
}

# The tables every unversioned kbo database has (alerts and outbox came later: _V1 adds
# them, since each of its statements is IF NOT EXISTS).
_V1_TABLES = {"runs", "jobs", "run_jobs", "attempts"}


def _refuse(path: Path, why: str) -> UserError:
    return UserError(f"refusing the state database: {why}", str(path))


def check_file(path: Path) -> None:
    """Refuse an empty file before SQLite would take it for a new, empty database.

    Only ``stat``: opening and closing the file here would drop the POSIX locks that this
    process's SQLite connections hold on it (see SQLite's "How To Corrupt" page).
    """
    if path.stat().st_size == 0:
        raise _refuse(
            path, "the file is empty (truncated?): restore it from a backup, or move it away"
        )


def version_of(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of an open database, or 0 for a fresh one; refuses foreign ones.

    One statement, so one snapshot: a migration committed by another process between
    separate reads would make a good database look foreign.
    """
    try:
        app_id, version, names = db.execute(
            "SELECT (SELECT application_id FROM pragma_application_id()),"
            " (SELECT user_version FROM pragma_user_version()),"
            " (SELECT group_concat(name, ' ') FROM sqlite_master WHERE type = 'table')"
        ).fetchone()
    except sqlite3.DatabaseError as e:
        raise _refuse(path, _why(e, path)) from None
    tables = set((names or "").split())
    if app_id == APPLICATION_ID:
        if version > VERSION:
            raise _refuse(path, f"schema {version} is newer than this kbo's ({VERSION})")
        return int(version)
    if app_id == 0 and version == 0:
        if not tables:
            return 0
        if tables >= _V1_TABLES:
            return 1
    raise _refuse(path, "it is not kbo's (unknown application id or tables)")


def _why(error: sqlite3.DatabaseError, path: Path) -> str:
    text = str(error)
    if "not a database" in text:
        return "not an SQLite database"
    if "unable to open" in text:
        return (
            f"cannot open it here: SQLite needs to write its -wal and -shm files in "
            f"{path.parent}, and cannot"
        )
    return f"damaged: {text}"


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring a writable database to ``VERSION`` in one transaction; a fresh one is created."""
    if version_of(db, path) == VERSION:
        return
    # A migration may make a table anew: foreign keys would refuse dropping the old one.
    # The pragma does nothing inside a transaction, so it is set before, and restored.
    enforced = db.execute("PRAGMA foreign_keys").fetchone()[0]
    db.execute("PRAGMA foreign_keys=OFF")
    try:
        _migrate(db, path)
    finally:
        db.execute(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    try:
        db.execute("BEGIN IMMEDIATE")
        version = version_of(db, path)  # again, under the lock: another process may have
        scripts = [_V1] if version <= 1 else []  # fresh, or unversioned (maybe without mail)
        scripts += [MIGRATIONS[v] for v in range(max(version, 1), VERSION)]
        for script in scripts:
            for statement in filter(str.strip, script.split(";\n")):
                db.execute(statement)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except sqlite3.Error as e:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise _refuse(path, f"cannot bring it to schema {VERSION}: {e}") from None
