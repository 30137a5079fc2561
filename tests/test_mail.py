"""Failure reports, FIXED mails, the digest and the outbox, against a real SMTP server
(aiosmtpd) and real coordinator and worker processes."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.conftest import git
from tests.services import Cluster, RedisServer, free_port, wait_for


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for _, m in self.messages]


class SlowInbox(Inbox):
    """An SMTP server that takes its time over each mail, as a busy relay does."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(1.5)
        return await super().handle_DATA(server, session, envelope)


class SmtpServer:
    def __init__(self, port: int, password: str | None = None, inbox: Inbox | None = None) -> None:
        self.inbox = inbox or Inbox()
        auth = {}
        if password is not None:
            auth = {
                # handled=False: aiosmtpd itself answers 235 or 535.
                "authenticator": lambda s, sess, env, mech, data: AuthResult(
                    success=data.password == password.encode(), handled=False
                ),
                "auth_required": True,
                "auth_require_tls": False,
            }
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=port, **auth)

    def __enter__(self) -> Inbox:
        self.controller.start()
        return self.inbox

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture
def mail_cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    port = free_port()
    cluster = Cluster(
        tmp_path,
        broker_url=redis_server.url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        mail_to=["debian-kernel@example.org"],
        arch_recipients=["alpha:debian-alpha@example.org"],
        fold_seconds=3,
        mail_authors=1,
    )
    cluster.smtp_port = port  # type: ignore[attr-defined]
    cluster.start_coordinator()
    cluster.start_worker("w1", "alpha,hppa,mips")
    yield cluster
    cluster.stop_all()


def commit_as(cluster: Cluster, author: str, message: str) -> str:
    git(
        cluster.repo,
        "-c",
        f"user.name={author}",
        "-c",
        f"user.email={author.split()[0].lower()}@example.org",
        "commit",
        "-q",
        "--allow-empty",
        "--author",
        f"{author} <{author.split()[0].lower()}@example.org>",
        "-m",
        message,
    )
    return git(cluster.repo, "rev-parse", "HEAD")


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def test_a_failure_mails_once_with_everything_and_a_fix_mails_once(mail_cluster: Cluster) -> None:
    cluster = mail_cluster
    with SmtpServer(cluster.smtp_port) as inbox:  # type: ignore[attr-defined]
        good = cluster.submit("--arch", "alpha", "--flavour", "alpha-smp", "--wait")
        assert good["succeeded"]
        commit_as(cluster, "Ada Lovelace", "alpha: rework setup")
        bad = commit_as(cluster, "Grace Hopper", "alpha: tidy includes")
        (cluster.control / "fail-alpha").touch()
        cluster.submit("--arch", "alpha", "--flavour", "alpha-smp", "--wait")
        cluster.submit("--arch", "alpha", "--flavour", "alpha-smp", "--wait")  # a retry
        wait_for(lambda: inbox.messages, 30, "the failure mail")
        time.sleep(5)
        assert len(inbox.messages) == 1
        recipients, message = inbox.messages[0]
        assert message["Subject"] == f"[kbo] 6.1.176-1: alpha/none/alpha-smp FAILED at {bad[:7]}"
        assert (message["X-Kbo-Arch"], message["X-Kbo-Flavour"]) == ("alpha", "alpha-smp")
        assert (message["X-Kbo-Commit"], message["X-Kbo-State"]) == (bad, "FAILED")
        assert message.get_content_type() == "text/plain" and not message.is_multipart()
        assert {
            "debian-kernel@example.org",
            "debian-alpha@example.org",
            "grace@example.org",
            "ada@example.org",
        } <= set(recipients)
        text = body(message)
        assert "recipe, stage:      test-script, step build" in text
        assert "executor, worker:   cross on w1@test" in text
        assert "arch/alpha/kernel/setup.c:42:7: error: 'boot_cpu_data' undeclared" in text
        assert (
            "the 2 commit(s) since the last successful build at " + good["commit_sha"][:7] in text
        )
        assert "Grace Hopper <grace@example.org>  alpha: tidy includes" in text
        assert "Ada Lovelace <ada@example.org>  alpha: rework setup" in text
        assert "Last 40 log lines" in text and "Full log: " in text
        assert (
            f"kbo submit {cluster.repo} --rev {bad} --recipe test-script --arch alpha "
            "--featureset none --flavour alpha-smp --wait"
        ) in text

        later = commit_as(cluster, "Ada Lovelace", "Unrelated")
        cluster.submit("--arch", "alpha", "--flavour", "alpha-smp", "--wait")
        (cluster.control / "fail-alpha").unlink()
        fixed = commit_as(cluster, "Ada Lovelace", "alpha: fix the build")
        cluster.submit("--arch", "alpha", "--flavour", "alpha-smp", "--wait")
        wait_for(lambda: len(inbox.messages) == 2, 30, "the FIXED mail")
        time.sleep(5)
        assert later != fixed and len(inbox.messages) == 2  # the failure at `later` mailed nothing
        fixed_mail = inbox.messages[1][1]
        assert (
            fixed_mail["Subject"] == f"[kbo] 6.1.176-1: alpha/none/alpha-smp FIXED at {fixed[:7]}"
        )
        assert f"Fixed by commit {fixed}" in body(fixed_mail)


def test_flavours_failing_with_the_same_error_fold_into_one_mail(mail_cluster: Cluster) -> None:
    cluster = mail_cluster
    with SmtpServer(cluster.smtp_port) as inbox:  # type: ignore[attr-defined]
        (cluster.control / "fail-mips").touch()
        cluster.submit("--arch", "mips", "--wait")
        wait_for(lambda: inbox.messages, 30, "the failure mail")
        time.sleep(5)
        assert len(inbox.messages) == 1
        message = inbox.messages[0][1]
        assert message["X-Kbo-Flavour"] == "4kc-malta, mips32r2eb, octeon"
        assert "flavours:           4kc-malta, mips32r2eb, octeon" in body(message)


def test_a_mail_waits_for_the_smtp_server(mail_cluster: Cluster) -> None:
    cluster = mail_cluster
    (cluster.control / "fail-hppa").touch()
    cluster.submit("--arch", "hppa", "--flavour", "parisc", "--wait")
    wait_for(lambda: "ConnectionRefusedError" in cluster.kbo("outbox").stdout, 30, "a failed try")
    with SmtpServer(cluster.smtp_port) as inbox:  # type: ignore[attr-defined]
        wait_for(lambda: inbox.messages, 90, "the mail after the server came up")
        time.sleep(3)
        assert len(inbox.messages) == 1
    assert "pending" not in cluster.kbo("outbox").stdout


def test_a_coordinator_killed_before_sending_sends_once_after_restart(
    mail_cluster: Cluster,
) -> None:
    cluster = mail_cluster
    with SmtpServer(cluster.smtp_port) as inbox:  # type: ignore[attr-defined]
        (cluster.control / "fail-alpha").touch()
        cluster.submit("--arch", "alpha", "--flavour", "alpha-generic", "--wait")
        wait_for(
            lambda: cluster.query("SELECT * FROM outbox WHERE state = 'pending'"),
            10,
            "the recorded report",
        )
        os.killpg(cluster.processes["coordinator"].pid, signal.SIGKILL)
        cluster.processes.pop("coordinator").wait()
        time.sleep(4)  # past the fold window: the report is due, and nobody sends it
        assert inbox.messages == []
        cluster.start_coordinator()
        wait_for(lambda: inbox.messages, 30, "the mail after the restart")
        time.sleep(4)
        assert len(inbox.messages) == 1


def test_the_digest_lists_exactly_the_arches_not_ok(mail_cluster: Cluster) -> None:
    cluster = mail_cluster
    with SmtpServer(cluster.smtp_port) as inbox:  # type: ignore[attr-defined]
        cluster.submit("--arch", "alpha", "--wait")
        assert cluster.kbo("digest").returncode == 0
        assert len(inbox.messages) == 1
        digest = body(inbox.messages[0][1])
        assert "2 of 3 tracked arches" in digest
        assert "hppa" in digest and "mips" in digest and "alpha" not in digest
        cluster.submit("--arch", "hppa,mips", "--wait")
        result = cluster.kbo("digest")
        assert "nothing to send" in result.stdout
        assert len(inbox.messages) == 1


def test_kbo_digest_beside_the_coordinator_sends_each_mail_once(mail_cluster: Cluster) -> None:
    """Both send from the outbox: each claims a mail before sending it, so the
    coordinator's sender never mails what ``kbo digest`` is still sending, or the reverse."""
    cluster = mail_cluster
    with SmtpServer(cluster.smtp_port, inbox=SlowInbox()) as inbox:  # type: ignore[attr-defined]
        for _ in range(3):
            result = cluster.kbo("digest")
            assert result.returncode == 0, result.stderr
            assert ": sent" in result.stdout
        time.sleep(4)
        ids = [str(m["Message-ID"]) for _, m in inbox.messages]
        assert len(ids) == 3 and len(set(ids)) == 3, ids


def test_bad_recipients_auth_and_logs_fail_cleanly(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    port = free_port()
    cluster = Cluster(
        tmp_path,
        broker_url=redis_server.url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        mail_to=["debian-kernel@example.org", "not an address"],
        fold_seconds=1,
        smtp_user="kbo",
        smtp_password="wrong",
    )
    script = tmp_path / "recipes" / "noisy.sh"
    script.write_text(
        "printf 'caf\\351 \\377\\n'; head -c 1048576 /dev/zero | tr '\\0' x; "
        "echo; echo 'drivers/x.c:1:1: error: boom'; exit 1\n"
    )
    (tmp_path / "recipes" / "noisy.toml").write_text(
        f'host_paths = ["{tmp_path / "recipes"}"]\n[[step]]\nargv = ["/bin/sh", "{script}"]\n'
    )
    try:
        cluster.start_coordinator()
        cluster.start_worker("w1", "alpha")
        with SmtpServer(port, password="right") as inbox:
            cluster.submit(
                "--recipe", "noisy", "--arch", "alpha", "--flavour", "alpha-smp", "--wait"
            )
            wait_for(
                lambda: "SMTPAuthenticationError" in cluster.kbo("outbox").stdout,
                30,
                "the auth failure in kbo outbox",
            )
            assert "SMTPAuthenticationError" in cluster.log("coordinator")
            assert inbox.messages == []
        cluster.config.write_text(cluster.config.read_text().replace('"wrong"', '"right"'))
        cluster.kill("coordinator")
        with SmtpServer(port, password="right") as inbox:
            cluster.start_coordinator()
            wait_for(lambda: inbox.messages, 60, "the mail once the password is right")
            recipients, message = inbox.messages[0]
            assert recipients == ["debian-kernel@example.org"]
            text = body(message)
            assert "caf\ufffd \ufffd" in text
            assert "characters cut]" in text
            assert max(len(line) for line in text.splitlines()) < 400
        outbox = cluster.kbo("outbox", "--all").stdout
        assert "invalid recipient 'not an address'" in outbox
        assert "invalid recipient" in cluster.log("coordinator")
    finally:
        cluster.stop_all()


def test_a_claim_naming_a_host_no_announcement_could_is_refused(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """The claim's host is what the admins' host alert names in its Subject, and what
    `kbo status` and `kbo workers` print: it is checked as an announcement's is, so a
    line break (a header of its own, or a mail that cannot be composed) or a terminal
    escape never gets that far."""
    from kbo import messaging
    from kbo.config import load_config
    from kbo.messaging.app import make_app

    cluster = Cluster(tmp_path, broker_url=redis_server.url, lease_seconds=60)
    try:
        cluster.start_coordinator()
        cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
        (attempt,) = cluster.attempts()
        app = make_app(load_config(str(cluster.config)))
        for worker, host in (
            ("x@evil", "evil\r\nBcc: everyone@example.org"),
            ("x\x1b]2;owned\x07@evil", "evil"),
            ("x@evil", "e" * 201),
        ):
            claim = messaging.call(app, "kbo.claim", attempt["id"], "t", worker, host, timeout=30)
            assert (claim["accepted"], claim["reason"]) == (False, "malformed worker or host")
        (attempt,) = cluster.attempts()
        assert (attempt["state"], attempt["worker_host"]) == ("queued", None)
        claim = messaging.call(app, "kbo.claim", attempt["id"], "t", "x@good", "good", timeout=30)
        assert claim["accepted"]
    finally:
        cluster.stop_all()


def test_a_forged_report_naming_a_log_path_mails_nothing_of_that_file(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Anyone on the broker can claim an attempt and report; the coordinator (root in
    embedded mode) must never read a path the report names, only the bytes it carries."""
    from kbo import messaging
    from kbo.config import load_config
    from kbo.messaging.app import make_app

    secret = tmp_path / "secret.conf"
    secret.write_text('smtp_password = "hunter2-do-not-mail"\n')
    port = free_port()
    cluster = Cluster(
        tmp_path,
        broker_url=redis_server.url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        mail_to=["debian-kernel@example.org"],
        fold_seconds=0,
        lease_seconds=60,
    )
    try:
        cluster.start_coordinator()
        with SmtpServer(port) as inbox:
            cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
            (attempt,) = cluster.attempts()
            app = make_app(load_config(str(cluster.config)))
            claim = messaging.call(
                app, "kbo.claim", attempt["id"], "forged", "x@y", "y", timeout=30
            )
            assert claim["accepted"]
            report = {
                "outcome": "failed",
                "first_error": "error: boom",
                "log_path": str(secret),
            }
            messaging.send(app, "kbo.finished", attempt["id"], "forged", report)
            wait_for(lambda: inbox.messages, 30, "the failure mail")
            text = body(inbox.messages[0][1])
        assert "hunter2" not in text
        (attempt,) = cluster.attempts()
        assert attempt["state"] == "failed"
        assert attempt["log_path"] != str(secret)
    finally:
        cluster.stop_all()


def test_the_full_log_links_to_the_dashboard_when_web_url_is_set() -> None:
    from kbo.config import Config
    from kbo.orchestrator.mail.compose import Composer
    from kbo.orchestrator.state import Attempt, Job

    job = Job(7, "/src", "a" * 40, "linux", "alpha", "none", "alpha-smp", None, "failed", 3, 0, 0)
    attempt = Attempt(3, 7, 1, "failed", log_path="/var/lib/kbo/logs/3.log.gz")

    def link(**settings: str) -> str:
        return Composer(Config(**settings), None)._log_link(job, attempt)  # type: ignore[arg-type]

    assert link(web_url="https://kbo.example.org/", log_url="https://logs.example.org") == (
        "https://kbo.example.org/attempts/3/log#first-error"
    )
    assert link(log_url="https://logs.example.org/") == (
        "https://logs.example.org/alpha_none_alpha-smp/3.log.gz"
    )
    assert link() == "/var/lib/kbo/logs/3.log.gz"
