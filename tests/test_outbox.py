"""The outbox in one process: what a failure mail says of the attempt that failed, its
suspects by ancestry, mails that cannot be composed, claims, and the SMTP server's
backoff, against a real SMTP server (aiosmtpd) and a real git repository."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kbo.config import Config, load_config
from kbo.orchestrator.mail import digest
from kbo.orchestrator.mail.outbox import Mailer
from kbo.orchestrator.mail.reports import Reporter
from kbo.orchestrator.state import JobSpec, Run, State, schema
from tests.conftest import KBO, git
from tests.services import free_port, wait_for
from tests.test_mail import Inbox, SmtpServer, body

ERROR = "arch/alpha/kernel/setup.c:42:7: error: 'boot_cpu_data' undeclared"


def commit_as(repo: Path, author: str, message: str) -> str:
    email = f"{author.split()[0].lower()}@example.org"
    git(repo, "commit", "-q", "--allow-empty", "--author", f"{author} <{email}>", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@dataclass
class Outbox:
    """A repository, the state database, and the coordinator's side of reporting."""

    tmp: Path
    repo: Path
    config: Config
    state: State
    smtp_port: int
    runs: int = 0

    def build(self, commit: str, outcome: str, *, error: str | None = None) -> int:
        """One attempt at the job alpha/none/alpha-smp at ``commit``, ended ``outcome``
        and reported on as the coordinator does; its id."""
        attempt = self.queue(commit)
        assert self.state.claim(attempt, "t", "w1@test", "test", 60).accepted
        log = self.tmp / f"{attempt}.log.gz"
        log.write_bytes(gzip.compress(f"== kbo stage step build ==\n{error or 'ok'}\n".encode()))
        result = {"outcome": outcome, "first_error": error, "log_path": str(log)}
        assert self.state.finish(attempt, "t", result | {"executor": "cross"}).accepted
        Reporter(self.config, self.state).on_result(attempt)
        return attempt

    def queue(self, commit: str) -> int:
        """A new attempt at the job at ``commit``, queued (a retry, once it failed)."""
        self.runs += 1
        run = Run(f"r{self.runs}", "me", "", str(self.repo), "main", commit, "r", "6.1.176-1")
        spec = JobSpec(str(self.repo), commit, "r", "alpha", "none", "alpha-smp")
        (attempt,) = self.state.record_run(run, [spec])
        return attempt

    def kbo(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = os.environ | {"KBO_CONFIG": str(self.tmp / "kbo.toml")}
        return subprocess.run(
            [str(KBO), *args], capture_output=True, text=True, env=env, check=False
        )


def make_outbox(tmp_path: Path, **settings: object) -> Outbox:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "Import linux 6.1.176-1 packaging")
    port = free_port()
    values = {
        "state_dir": str(tmp_path / "state"),
        "repository": str(repo),
        "branch": "main",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "mail_to": ["debian-kernel@example.org"],
        "mail_authors": 1,
        "fold_seconds": 0,
    } | settings
    path = tmp_path / "kbo.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    config = load_config(str(path))
    return Outbox(tmp_path, repo, config, State(config.database), port)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    found = make_outbox(tmp_path)
    yield found
    found.state.close()


def flush_until(outbox: Outbox, inbox: Inbox, count: int, timeout: float = 30) -> None:
    def sent() -> bool:
        Mailer(outbox.config, outbox.state).flush()
        return len(inbox.messages) >= count

    wait_for(sent, timeout, f"{count} mail(s)")


def test_a_retry_queued_within_fold_seconds_leaves_the_failure_mail_whole(
    tmp_path: Path,
) -> None:
    outbox = make_outbox(tmp_path, fold_seconds=1)
    bad = commit_as(outbox.repo, "Grace Hopper", "alpha: tidy includes")
    failed = outbox.build(bad, "failed", error=ERROR)
    outbox.queue(bad)  # asked again before the report is due: the job's attempt is new
    time.sleep(1.2)
    with SmtpServer(outbox.smtp_port) as inbox:
        flush_until(outbox, inbox, 1)
    text = body(inbox.messages[0][1])
    assert f"  {ERROR}" in text and "(none found)" not in text
    assert f"Full log: {tmp_path / f'{failed}.log.gz'}" in text
    assert "executor, worker:   cross on w1@test (test)" in text


def test_suspects_are_the_commits_since_the_nearest_good_ancestor_across_a_merge(
    outbox: Outbox,
) -> None:
    """The newest success by time is on a branch the failing commit does not contain:
    the suspects are ``git rev-list LAST_GOOD..FAILED``, LAST_GOOD the nearest
    success among the failing commit's ancestors."""
    repo = outbox.repo
    root = git(repo, "rev-parse", "HEAD")
    outbox.build(root, "succeeded")
    good = commit_as(repo, "Ada Lovelace", "alpha: rework setup")
    outbox.build(good, "succeeded")
    git(repo, "checkout", "-q", "-b", "side")
    commit_as(repo, "Sue Side", "alpha: side work")
    git(repo, "checkout", "-q", "main")
    commit_as(repo, "Bob Main", "alpha: main work")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge branch side", "side")
    bad = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "elsewhere", root)
    elsewhere = commit_as(repo, "Zed Elsewhere", "unrelated branch")
    git(repo, "checkout", "-q", "main")
    outbox.build(elsewhere, "succeeded")  # the newest success, not an ancestor of `bad`
    outbox.build(bad, "failed", error=ERROR)
    with SmtpServer(outbox.smtp_port) as inbox:
        flush_until(outbox, inbox, 1)
    recipients, message = inbox.messages[0]
    text = body(message)
    assert f"the 3 commit(s) since the last successful build at {good[:7]}:" in text
    for suspect in ("Sue Side", "Bob Main", "Merge branch side"):
        assert suspect in text
    assert "Ada Lovelace" not in text and "Zed Elsewhere" not in text
    assert set(recipients) == {
        "debian-kernel@example.org",
        "sue@example.org",
        "bob@example.org",
        "km@example.org",
    }


def test_with_no_earlier_success_only_the_failing_commit_s_author_is_named(
    outbox: Outbox,
) -> None:
    for name in ("Ada Lovelace", "Bob Main", "Sue Side"):
        commit_as(outbox.repo, name, f"work by {name}")
    bad = commit_as(outbox.repo, "Grace Hopper", "alpha: tidy includes")
    outbox.build(bad, "failed", error=ERROR)
    with SmtpServer(outbox.smtp_port) as inbox:
        flush_until(outbox, inbox, 1)
    recipients, message = inbox.messages[0]
    text = body(message)
    assert "no earlier build of this job succeeded at an ancestor of this commit" in text
    assert "Grace Hopper <grace@example.org>  alpha: tidy includes" in text
    assert not any(name in text for name in ("Ada", "Bob", "Sue", "Kernel Maintainer"))
    assert set(recipients) == {"debian-kernel@example.org", "grace@example.org"}


def test_a_report_that_cannot_be_composed_is_skipped_and_the_next_mail_goes_out(
    outbox: Outbox,
) -> None:
    bad = commit_as(outbox.repo, "Grace Hopper", "alpha: tidy includes")
    outbox.build(bad, "failed", error=ERROR)
    outbox.state.db.execute("UPDATE outbox SET data = ?", ('{"jobs": [{"job": 4242}]}',))
    now = time.time()
    digest.queue(outbox.config, outbox.state, "[kbo] digest: 1 arch", "alpha\n", now)
    with SmtpServer(outbox.smtp_port) as inbox:
        flush_until(outbox, inbox, 1)
        time.sleep(0.5)
        assert inbox.subjects() == ["[kbo] digest: 1 arch"]
    listed = outbox.kbo("outbox")
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if "skipped" in line]
    assert "cannot be composed: Uncomposable: job 4242 does not exist" in row


def test_an_author_whose_name_is_not_utf8_is_mailed_all_the_same(outbox: Outbox) -> None:
    """git passes the bytes through when it cannot convert them (an unknown encoding)."""
    repo = outbox.repo
    commit = (
        f"tree {git(repo, 'rev-parse', 'HEAD^{tree}')}\nparent {git(repo, 'rev-parse', 'HEAD')}\n"
    ).encode() + (
        b"author Jos\xe9 Latin <jose@example.org> 1700000000 +0000\n"
        b"committer Kernel Maintainer <km@example.org> 1700000000 +0000\n"
        b"encoding x-unknown\n\nalpha: x\n"
    )
    sha = (
        subprocess.run(
            ["git", "-C", str(repo), "hash-object", "-t", "commit", "-w", "--stdin"],
            input=commit,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    outbox.build(sha, "failed", error=ERROR)
    with SmtpServer(outbox.smtp_port) as inbox:
        flush_until(outbox, inbox, 1)
    assert "Jos\ufffd Latin <jose@example.org>  alpha: x" in body(inbox.messages[0][1])


def test_after_an_outage_the_failure_goes_out_before_the_fix_that_answers_it(
    outbox: Outbox,
) -> None:
    bad = commit_as(outbox.repo, "Grace Hopper", "alpha: tidy includes")
    outbox.build(bad, "failed", error=ERROR)
    assert Mailer(outbox.config, outbox.state).flush() == 0  # no SMTP server yet
    fixed = commit_as(outbox.repo, "Grace Hopper", "alpha: fix the build")
    outbox.build(fixed, "succeeded")
    with SmtpServer(outbox.smtp_port) as inbox:
        flush_until(outbox, inbox, 2)
    assert [s.split(": ", 1)[1] for s in inbox.subjects()] == [
        f"alpha/none/alpha-smp FAILED at {bad[:7]}",
        f"alpha/none/alpha-smp FIXED at {fixed[:7]}",
    ]


def test_a_host_that_keeps_failing_builds_mails_its_admins_once_and_no_author(
    tmp_path: Path,
) -> None:
    """Four infra-errors on one host within a day, each at a commit of its own: the
    third queues one mail to ``admin_mail_to`` naming the host and what failed; the
    fourth queues none; no author, and no list, hears of any of them."""
    outbox = make_outbox(tmp_path, admin_mail_to=["buildd-admin@example.org"])
    try:
        for i in range(4):
            commit = commit_as(outbox.repo, "Grace Hopper", f"alpha: change {i}")
            outbox.build(commit, "infra-error", error=f"No space left on device ({i})")
            kinds = [m.kind for m in outbox.state.outbox(include_sent=True)]
            assert kinds == ([] if i < 2 else ["host"]), (i, kinds)
        with SmtpServer(outbox.smtp_port) as inbox:
            flush_until(outbox, inbox, 1)
            time.sleep(0.5)
        ((recipients, message),) = inbox.messages
        assert recipients == ["buildd-admin@example.org"]
        assert inbox.subjects() == ["[kbo] host test: 3 infra-errors in a day"]
        text = body(message)
        assert "No space left on device (2)" in text and "alpha_none_alpha-smp" in text
    finally:
        outbox.state.close()


def test_a_mail_has_one_sender_until_its_claim_expires(outbox: Outbox) -> None:
    with outbox.state.transaction() as tx:
        mail = tx.queue_mail("digest", {"subject": "s", "body": "b", "recipients": []}, 1, due=1)
    other = State(outbox.config.database)
    assert outbox.state.claim_mail(mail, "coordinator", time.time() + 60)
    assert not other.claim_mail(mail, "kbo digest", time.time() + 60)
    assert outbox.state.claim_mail(mail, "coordinator", time.time() + 60)  # its own again
    outbox.state.db.execute("UPDATE outbox SET claim_expires = ?", (time.time() - 1,))
    assert other.claim_mail(mail, "kbo digest", time.time() + 60)  # the first one died
    other.mail_sent(mail, None)
    assert not outbox.state.claim_mail(mail, "coordinator", time.time() + 60)
    other.close()


def test_a_schema_4_database_is_migrated_keeping_its_outbox(tmp_path: Path) -> None:
    """Schema 5 lets a mail be skipped (a CHECK constraint: the outbox is made anew, its
    rows kept), claimed, and keeps the SMTP server's backoff."""
    path = tmp_path / "kbo.sqlite"
    old = sqlite3.connect(path)
    old.executescript(schema._V1 + "".join(schema.MIGRATIONS[v] for v in (1, 2, 3)))
    old.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    old.executescript(
        "PRAGMA user_version = 4;"
        "INSERT INTO outbox (id, kind, fold_key, data, message, created_at, due_at, next_try,"
        " attempts, last_error) VALUES (7, 'digest', NULL, '{}', 'Subject: hello', 1, 1, 9,"
        " 2, 'ConnectionRefusedError');"
    )
    old.close()
    state = State(path)
    (mail,) = state.outbox(include_sent=False)
    assert (mail.id, mail.subject, mail.attempts, mail.last_error, mail.claimed_by) == (
        7,
        "hello",
        2,
        "ConnectionRefusedError",
        None,
    )
    assert state.claim_mail(7, "me", time.time() + 60)
    state.mail_skipped(7, "cannot be composed")
    assert state.outbox(include_sent=False)[0].state == "skipped"
    state.mail_server_failed("127.0.0.1:25", 1, "refused", 5.0)
    assert state.mail_server("127.0.0.1:25") == (1, 5.0)
    assert state.db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    indexes = {
        r[0] for r in state.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    assert {"outbox_pending", "outbox_by_kind"} <= indexes
