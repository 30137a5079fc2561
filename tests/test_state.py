"""The state database: its schema version, migrations, refusals, and reads near HEAD."""

from __future__ import annotations

import functools
import hashlib
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kbo.config import Config
from kbo.errors import UserError
from kbo.orchestrator import standings
from kbo.orchestrator.retries import RetryPolicy
from kbo.orchestrator.staleness import Commit, assess
from kbo.orchestrator.state import JobResult, JobSpec, Run, State, StateReader, schema
from tests.conftest import LINUX_61, copy_debian, git

V1_SCHEMA = schema._V1


def test_a_new_database_is_kbo_s_at_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "kbo.sqlite"
    State(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION


def test_a_database_from_before_versioning_is_migrated_keeping_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "kbo.sqlite"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA)
    old.execute(
        "INSERT INTO jobs (source, commit_sha, recipe, arch, featureset, flavour, state,"
        " created_at, updated_at)"
        " VALUES ('src', 'c1', 'r', 'alpha', 'none', 'f', 'succeeded', 1, 1)"
    )
    old.commit()
    old.close()
    state = State(path)
    assert state.results_at("src", "r", ["alpha"], ["c1"]) == [
        JobResult("c1", "alpha", "none", "f", "succeeded")
    ]
    assert state.matrix("src", "c1") is None  # the new table is there, empty
    assert StateReader.open(path).has_results("src", "r", "alpha")


def test_a_database_from_before_mail_is_migrated_too(tmp_path: Path) -> None:
    """The first kbo databases had no alerts or outbox tables yet."""
    path = tmp_path / "kbo.sqlite"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA.split("CREATE TABLE IF NOT EXISTS alerts")[0])
    old.close()
    State(path).close()
    assert StateReader.open(path).outbox(include_sent=True) == []


def test_a_dangling_link_is_refused_not_taken_for_no_database(tmp_path: Path) -> None:
    path = tmp_path / "kbo.sqlite"
    path.symlink_to(tmp_path / "unmounted" / "kbo.sqlite")
    with pytest.raises(UserError, match="dangling"):
        StateReader.open(path)


def test_processes_creating_the_database_at_once_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "kbo.sqlite"
    script = (
        "import sys; from pathlib import Path; from kbo.orchestrator.state import State;"
        "State(Path(sys.argv[1])).check_writable()"
    )
    starters = [
        subprocess.Popen([sys.executable, "-c", script, str(path)], stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    failures = [p.communicate()[1] for p in starters if p.wait() != 0]
    assert failures == []
    assert not list(tmp_path.glob(".kbo.sqlite.*"))  # no spare file left behind


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "the file is empty (truncated?)"),
        (b"not a database at all\n", "not an SQLite database"),
    ],
)
def test_an_empty_or_foreign_file_is_refused_not_treated_as_empty(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "kbo.sqlite"
    path.write_bytes(content)
    for opener in (State, StateReader.open):
        with pytest.raises(UserError, match=re.escape(why)):
            opener(path)
    assert path.read_bytes() == content  # untouched


def test_another_program_s_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kbo.sqlite"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE photos (id INTEGER)")
    other.commit()
    other.close()
    with pytest.raises(UserError, match="it is not kbo's"):
        State(path)


def test_a_newer_kbo_s_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kbo.sqlite"
    State(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(UserError, match="newer than this kbo's"):
        State(path)


def test_a_reader_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "kbo.sqlite"
    reader = StateReader.open(path)  # no database yet: nothing was ever recorded
    assert not reader.has_results("src", "r", "alpha")
    assert not path.exists()
    State(path).close()
    reader = StateReader.open(path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.db.execute("DELETE FROM jobs")


def test_standings_read_near_head_agree_with_reading_every_result(tmp_path: Path) -> None:
    """alpha failed for 30 commits, hppa built at every other commit, mips never: reading
    back in chunks gives exactly what a read of the whole history gives."""
    repo = copy_debian(LINUX_61, tmp_path / "repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "import")
    for i in range(59):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"change {i}")
    shas = git(repo, "rev-list", "main").split()
    config = Config(
        state_dir=str(tmp_path / "state"),
        repository=str(repo),
        branch="main",
        tracked_arches=("alpha", "hppa", "mips"),
        default_recipe="kbuild-smoke",
    )
    state = State(config.database)
    source = str(repo.resolve())
    found = standings.compute(config, "kbuild-smoke", state)
    jobs = {arch: found.jobs_at_head[arch][0] for arch in ("alpha", "hppa", "mips")}
    everything = []
    for age, sha in enumerate(shas[1:], 1):
        for arch, outcome in (
            ("alpha", "failed" if age <= 30 else "succeeded"),
            ("hppa", "succeeded" if age % 2 else None),
            ("mips", "failed" if age == 45 else None),
        ):
            if outcome is None:
                continue
            job = jobs[arch]
            spec = JobSpec(source, sha, "kbuild-smoke", arch, job.featureset, job.flavour)
            run = Run(f"{sha}-{arch}", "me", "", source, "main", sha, "kbuild-smoke", "1")
            (attempt,) = state.record_run(run, [spec])
            state.claim(attempt, "t", "w", "h", 60)
            state.finish(attempt, "t", {"outcome": outcome})
            everything.append(JobResult(sha, arch, job.featureset, job.flavour, outcome))
    found = standings.compute(config, "kbuild-smoke", StateReader.open(config.database))

    def flavours_at(arch: str, sha: str) -> set[tuple[str, str]]:
        return {(jobs[arch].featureset, jobs[arch].flavour)}

    for standing in found.arches:
        whole = assess(
            standing.name, found.history, functools.partial(flavours_at, standing.name), everything
        )
        assert standing == whole
    assert [(s.name, s.state, s.commits_behind) for s in found.arches] == [
        ("alpha", "FAILING", 31),
        ("hppa", "STALE", 1),
        ("mips", "FAILING", None),
    ]


def test_opening_the_database_again_keeps_this_process_s_locks(tmp_path: Path) -> None:
    """The coordinator opens one connection per thread. Opening the file outside SQLite
    would drop this process's POSIX locks, and another process closing the database would
    then delete the WAL under it: writes made after that were lost to every reader."""
    path = tmp_path / "kbo.sqlite"
    first = State(path)
    State(path).close()  # a second thread's connection

    def jobs_seen_by_another_process() -> int:
        out = subprocess.run(
            [sys.executable, "-c", f"import sqlite3; print(sqlite3.connect({str(path)!r})"  # noqa: S608
             ".execute('SELECT COUNT(*) FROM jobs').fetchone()[0])"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return int(out.stdout)

    assert jobs_seen_by_another_process() == 0
    run = Run("r1", "me", "", "src", "main", "c1", "r", "1")
    first.record_run(run, [JobSpec("src", "c1", "r", "alpha", "none", "f")])
    assert jobs_seen_by_another_process() == 1


def _recorded(tmp_path: Path, results: list[tuple[str, str, str, str, str]]) -> State:
    state = State(tmp_path / "kbo.sqlite")
    for i, (sha, arch, featureset, flavour, outcome) in enumerate(results):
        run = Run(f"r{i}", "me", "", "src", "main", sha, "rc", "1")
        (attempt,) = state.record_run(run, [JobSpec("src", sha, "rc", arch, featureset, flavour)])
        state.claim(attempt, "t", "w", "h", 60)
        state.finish(attempt, "t", {"outcome": outcome})
    return state


# Shas that sort in another order than the history, as real ones do.
HISTORY = [
    Commit(hashlib.sha1(str(i).encode(), usedforsecurity=False).hexdigest(), 10_000 - i)
    for i in range(200)
]


def sha(i: int) -> str:
    return HISTORY[i].sha


@pytest.mark.parametrize(
    ("name", "flavours", "results"),
    [
        (
            "a flavour removed and added again, which failed then built long ago",
            lambda i: {("none", "y")} if 5 <= i < 40 else {("none", "x"), ("none", "y")},
            [(20, "y", "succeeded"), (60, "x", "failed"), (60, "y", "succeeded"),
             (70, "x", "succeeded"), (70, "y", "succeeded")],
        ),
        (
            "an arch-scope recipe whose representative flavour changed",
            lambda i: {("none", "y")} if 3 <= i < 50 else {("none", "x")},
            [(10, "y", "succeeded"), (80, "x", "failed")],
        ),
        (
            "successes whose shas sort in another order than the history",
            lambda i: {("none", "x")},
            [(i, "x", "succeeded") for i in range(16, 26)],
        ),
    ],
)  # fmt: skip
def test_reading_near_head_agrees_with_reading_every_result(
    tmp_path: Path,
    name: str,
    flavours: Callable[[int], set[tuple[str, str]]],
    results: list[tuple[int, str, str]],
) -> None:
    position = {c.sha: i for i, c in enumerate(HISTORY)}
    rows = [(sha(i), "a", "none", flavour, outcome) for i, flavour, outcome in results]
    state = _recorded(tmp_path, rows)
    read: list[int] = []

    def flavours_at(arch: str, commit: str) -> set[tuple[str, str]]:
        read.append(position[commit])
        return flavours(position[commit])

    near = standings._results_near_head(state, "src", "rc", ["a"], HISTORY, flavours_at)
    required = functools.partial(flavours_at, "a")
    everything = [JobResult(*row) for row in rows]
    assert assess("a", HISTORY, required, near) == assess("a", HISTORY, required, everything)
    # No matrix older than the newest complete build is read (a reader cannot keep them).
    assert max(read) == min(i for i, _, outcome in results if outcome == "succeeded"), name


def test_damaged_rows_are_refused_in_words_or_read_again(tmp_path: Path) -> None:
    """A cached matrix that is not what kbo wrote is read from git again; a mail whose
    data is damaged is refused in one line, not a JSONDecodeError."""
    path = tmp_path / "kbo.sqlite"
    state = State(path)
    state.keep_matrix("src", "c1", "1", [("alpha", "none", "alpha-smp", "alpha", True)])
    with state.transaction() as tx:
        tx.queue_mail("digest", {"subject": "s", "body": "b", "recipients": []}, 1.0, due=1.0)
    state.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE matrices SET jobs = 'garbage'")
    db.execute("UPDATE outbox SET data = '[1, 2]'")
    db.commit()
    db.close()
    reader = StateReader.open(path)
    assert reader.matrix("src", "c1") is None
    with pytest.raises(UserError, match="outbox row 1 is damaged"):
        reader.outbox(include_sent=True)


def test_a_schema_3_database_is_migrated_keeping_its_jobs_and_attempts(tmp_path: Path) -> None:
    """Schema 4 lets jobs and attempts end infra-error or dep-wait: SQLite cannot change a
    CHECK constraint, so both tables are made anew, their rows and references kept."""
    path = tmp_path / "kbo.sqlite"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA + schema.MIGRATIONS[1] + schema.MIGRATIONS[2])
    old.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    old.executescript(
        "PRAGMA user_version = 3;"
        "INSERT INTO runs VALUES ('r1', 1, 'me', '', 'src', 'main', 'c1', 'r', '1');"
        "INSERT INTO jobs (id, source, commit_sha, recipe, arch, featureset, flavour, state,"
        " current_attempt, created_at, updated_at)"
        " VALUES (5, 'src', 'c1', 'r', 'alpha', 'none', 'f', 'running', 9, 1, 1);"
        "INSERT INTO run_jobs VALUES ('r1', 5, 1);"
        "INSERT INTO attempts (id, job_id, number, state, token, created_at, stage)"
        " VALUES (9, 5, 1, 'running', 't', 1, 'step build');"
    )
    old.close()
    state = State(path)
    attempt = state.attempt(9)
    assert attempt is not None and (attempt.state, attempt.stage) == ("running", "step build")
    assert state.finish(9, "t", {"outcome": "infra-error", "first_error": "disk"}).accepted
    assert state.results_at("src", "r", ["alpha"], ["c1"]) == [
        JobResult("c1", "alpha", "none", "f", "infra-error")
    ]
    summary = state.run("r1")
    assert summary is not None and summary.jobs[0].job.id == 5
    assert state.db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert state.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert state.db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION


def test_a_schema_4_database_is_migrated_and_its_jobs_can_be_cancelled_and_retried(
    tmp_path: Path,
) -> None:
    """Schema 6 lets jobs and attempts end cancelled and records manual retries: both
    tables are made anew, their rows and references kept."""
    path = tmp_path / "kbo.sqlite"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA + "".join(schema.MIGRATIONS[v] for v in (1, 2, 3)))
    old.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    old.executescript(
        "PRAGMA user_version = 4;"
        "INSERT INTO runs VALUES ('r1', 1, 'me', '', 'src', 'main', 'c1', 'r', '1');"
        "INSERT INTO jobs (id, source, commit_sha, recipe, arch, featureset, flavour, state,"
        " current_attempt, created_at, updated_at)"
        " VALUES (5, 'src', 'c1', 'r', 'alpha', 'none', 'f', 'running', 9, 1, 1);"
        "INSERT INTO run_jobs VALUES ('r1', 5, 1);"
        "INSERT INTO attempts (id, job_id, number, state, token, created_at, not_before)"
        " VALUES (9, 5, 1, 'running', 't', 1, 7);"
    )
    old.close()
    state = State(path)
    assert state.db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    attempt = state.attempt(9)
    assert attempt is not None and (attempt.state, attempt.not_before) == ("running", 7)
    assert state.jobs_of_run("r1") == [5]
    done = state.cancel([5], "me@h")
    assert [(job.id, job.state, was) for job, was in done.cancelled] == [
        (5, "cancelled", "running")
    ]
    assert not state.finish(9, "t", {"outcome": "succeeded"}).accepted
    given = state.give_back(5, "me@h", "req-1")
    assert given.attempt_id is not None
    assert state.give_back(5, "me@h", "req-1").attempt_id == given.attempt_id
    retried = state.attempt(given.attempt_id)
    assert retried is not None and (retried.number, retried.retried_by) == (2, "me@h")
    assert state.db.execute("PRAGMA foreign_key_check").fetchall() == []


def _request(state: State, name: str) -> list[int]:
    """A run asking for the one job these tests build; the attempts it queued."""
    run = Run(name, "me", "", "src", "main", "c1", "r", "1")
    return state.record_run(run, [JobSpec("src", "c1", "r", "alpha", "none", "f")])


def _running(state: State) -> int:
    (attempt,) = _request(state, "r1")
    assert state.claim(attempt, "t", "w", "h", 60).accepted
    return attempt


@pytest.mark.parametrize("outcome", ["exploded", "FAILED", "", None, 3, ["failed"]])
def test_an_unknown_outcome_is_refused(tmp_path: Path, outcome: object) -> None:
    state = State(tmp_path / "kbo.sqlite", RetryPolicy(3, 30))
    attempt = _running(state)
    verdict = state.finish(attempt, "t", {"outcome": outcome})
    assert not verdict.accepted and verdict.reason.startswith("unknown outcome")
    assert state.attempt(attempt).state == "running"  # type: ignore[union-attr]


def test_an_infra_error_is_retried_with_backoff_then_ends_the_job(tmp_path: Path) -> None:
    state = State(tmp_path / "kbo.sqlite", RetryPolicy(infra_retries=2, first_wait=30))
    attempt = _running(state)
    waits = []
    for _ in range(3):
        start = time.time()
        verdict = state.finish(attempt, "t", {"outcome": "infra-error", "first_error": "503"})
        assert verdict.accepted
        job = state.job_of_attempt(attempt)
        assert job is not None and job.state == "infra-error"
        if job.current_attempt == attempt:
            break  # no retry: the job ended infra-error
        retry = state.attempt(job.current_attempt)  # type: ignore[arg-type]
        assert retry is not None and retry.state == "queued" and retry.not_before is not None
        waits.append(round(retry.not_before - start))
        # Not published before it is due: then the sweep publishes it.
        assert state.unpublished(republish_after=3600) == []
        state.db.execute("UPDATE attempts SET not_before = ? WHERE id = ?", (start, retry.id))
        assert state.unpublished(republish_after=3600) == [retry.id]
        attempt = retry.id
        assert state.claim(attempt, "t", "w", "h", 60).accepted
    assert waits == [30, 60]
    summary = state.run("r1")
    assert summary is not None
    (job_json,) = [j.to_json() for j in summary.jobs]
    assert (job_json["state"], job_json["ended"], job_json["retry_at"]) == (
        "infra-error",
        True,
        None,
    )
    assert job_json["first_error"] == "503" and job_json["attempts"] == 3
    # A later request for the job tries it again, as it would a failed one.
    assert len(_request(state, "r2")) == 1


def test_a_dep_wait_waits_long_without_limit_and_a_failure_is_not_retried(
    tmp_path: Path,
) -> None:
    state = State(tmp_path / "kbo.sqlite", RetryPolicy(infra_retries=1, first_wait=30))
    attempt = _running(state)
    for i in range(5):
        start = time.time()
        state.finish(
            attempt, "t", {"outcome": "dep-wait", "first_error": "missing Build-Depends: x"}
        )
        job = state.job_of_attempt(attempt)
        assert job is not None and job.state == "dep-wait" and job.current_attempt != attempt
        retry = state.attempt(job.current_attempt)  # type: ignore[arg-type]
        assert retry is not None and round(retry.not_before - start) == 30 * 64  # type: ignore[operator]
        summary = state.run("r1")
        assert summary is not None
        (waiting,) = [j.to_json() for j in summary.jobs]
        assert waiting["ended"] is True and waiting["retry_at"] == retry.not_before
        assert waiting["first_error"] == "missing Build-Depends: x"
        # Asked for again while it waits: nothing new is queued.
        assert _request(state, f"again{i}") == []
        attempt = retry.id
        assert state.claim(attempt, "t", "w", "h", 60).accepted
    state.finish(attempt, "t", {"outcome": "failed", "first_error": "setup.c:42: error"})
    job = state.job_of_attempt(attempt)
    assert job is not None and (job.state, job.current_attempt) == ("failed", attempt)


def test_the_worker_inventory_counts_its_running_jobs_and_recent_infra_errors(
    tmp_path: Path,
) -> None:
    from kbo.orchestrator.state import WorkerInfo

    state = State(tmp_path / "kbo.sqlite")
    info = WorkerInfo("w", "h", ["alpha"], {"alpha": ["cross"]}, 2, "0.1.0", 1.0, 0.0)
    state.worker_announced(info)
    (attempt,) = _request(state, "r1")
    assert state.claim(attempt, "t", "w", "h", 60).accepted
    state.db.execute("UPDATE workers SET last_seen = 5")
    state.worker_seen(attempt, "t")
    (seen,) = state.workers(infra_since=0)
    assert seen.jobs == ["alpha_none_f"] and seen.info.last_seen > 5
    assert state.arches_served(seen_since=time.time() - 60) == {"alpha"}
    assert state.arches_served(seen_since=time.time() + 60) == set()
    assert state.finish(attempt, "t", {"outcome": "infra-error", "first_error": "disk"}).accepted
    (seen,) = state.workers(infra_since=time.time() - 86400)
    assert (seen.jobs, seen.infra_errors) == ([], 1)
    assert state.workers(infra_since=time.time() + 1)[0].infra_errors == 0


def test_a_manual_retry_is_counted_apart_from_automatic_ones(tmp_path: Path) -> None:
    """An infra-error job out of its automatic retries, given back: the new attempt has
    its own automatic retries again, and only it is marked a manual retry."""
    state = State(tmp_path / "kbo.sqlite", RetryPolicy(infra_retries=1, first_wait=30))
    attempt = _running(state)

    def fails(attempt: int) -> int:
        assert state.finish(attempt, "t", {"outcome": "infra-error"}).accepted
        job = state.job_of_attempt(attempt)
        assert job is not None and job.current_attempt is not None
        return job.current_attempt

    retry = fails(attempt)
    assert retry != attempt and state.claim(retry, "t", "w", "h", 60).accepted
    assert fails(retry) == retry  # out of automatic retries: the job ended infra-error
    given = state.give_back(1, "me@h", "req-1").attempt_id
    assert given is not None and state.claim(given, "t", "w", "h", 60).accepted
    again = fails(given)
    assert again != given  # an automatic retry again, counted from the manual one
    numbers = state.db.execute("SELECT number, retried_by FROM attempts ORDER BY number")
    assert [tuple(r) for r in numbers] == [(1, None), (2, None), (3, "me@h"), (4, None)]


def test_a_schema_4_database_is_migrated_keeping_its_jobs_and_attempts(tmp_path: Path) -> None:
    """Schema 7 lets jobs end lost or superseded, and notes why each attempt was made."""
    path = tmp_path / "kbo.sqlite"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA + "".join(schema.MIGRATIONS[v] for v in (1, 2, 3)))
    old.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    old.executescript(
        "PRAGMA user_version = 4;"
        "INSERT INTO runs VALUES ('r1', 1, 'me', '', 'src', 'main', 'c1', 'r', '1');"
        "INSERT INTO jobs (id, source, commit_sha, recipe, arch, featureset, flavour, state,"
        " current_attempt, created_at, updated_at)"
        " VALUES (5, 'src', 'c1', 'r', 'alpha', 'none', 'f', 'infra-error', 9, 1, 1);"
        "INSERT INTO run_jobs VALUES ('r1', 5, 1);"
        "INSERT INTO attempts (id, job_id, number, state, token, created_at, not_before)"
        " VALUES (8, 5, 1, 'infra-error', 't', 1, NULL), (9, 5, 2, 'queued', NULL, 1, 40);"
    )
    old.close()
    state = State(path)
    assert state.db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    retry = state.attempt(9)
    assert retry is not None and (retry.state, retry.not_before) == ("queued", 40)
    assert state.db.execute("SELECT cause FROM attempts WHERE id = 9").fetchone()[0] is None
    state.db.execute("UPDATE jobs SET state = 'superseded' WHERE id = 5")
    state.db.execute("UPDATE attempts SET state = 'superseded' WHERE id = 9")
    summary = state.run("r1")
    assert summary is not None and summary.jobs[0].job.state == "superseded"
    assert state.db.execute("PRAGMA foreign_key_check").fetchall() == []
