"""Compose kbo's mails from state, git and logs, and send them from the outbox.

A report is composed once, when it is first due, and the text is kept: a retry after an
SMTP outage or a crash sends the very same message. Plain text, UTF-8, proper MIME;
the full log is linked or named, never attached.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import smtplib
import ssl
import subprocess
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from orchestrator import repository
from orchestrator.config import Config
from orchestrator.state import State

log = logging.getLogger("kbo.mail")
MAX_LINE = 300
TAIL_LINES = 40
ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


def clean_lines(data: bytes) -> list[str]:
    """Log lines fit for a mail: invalid UTF-8 replaced, control characters and very long
    lines cut."""
    lines = []
    for raw in data.decode("utf-8", errors="replace").splitlines():
        line = "".join(c if c.isprintable() or c == "\t" else "?" for c in raw)
        if len(line) > MAX_LINE:
            line = f"{line[:MAX_LINE]} [... {len(line) - MAX_LINE} characters cut]"
        lines.append(line)
    return lines


def read_log(path: str | None) -> list[str]:
    if not path or not Path(path).exists():
        return []
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return clean_lines(f.read())


class Mailer:
    def __init__(self, config: Config, state: State) -> None:
        self.config = config
        self.state = state

    # -- sending ---------------------------------------------------------------------

    def flush(self) -> int:
        """Send every due report; a failure is recorded and retried with backoff."""
        if not self.config.smtp_host:
            return 0
        now, sent = time.time(), 0
        rows = self.state.db.execute(
            "SELECT * FROM outbox WHERE state = 'pending' AND due_at <= ? AND next_try <= ?"
            " ORDER BY id",
            (now, now),
        ).fetchall()
        for row in rows:
            message = row["message"] or self._freeze(row)
            try:
                problems = self._send(message)
            except (OSError, smtplib.SMTPException, ssl.SSLError) as e:
                self._failed(row["id"], row["attempts"] + 1, f"{type(e).__name__}: {e}")
                continue
            if problems:
                log.warning("mail %s sent, but: %s", row["id"], problems)
            with self.state.transaction() as db:
                db.execute(
                    "UPDATE outbox SET state = 'sent', sent_at = ?, last_error = ?,"
                    " attempts = attempts + 1 WHERE id = ?",
                    (time.time(), problems, row["id"]),
                )
            sent += 1
        return sent

    def _freeze(self, row: Any) -> str:
        text = self.compose(row["kind"], json.loads(row["data"])).as_string()
        with self.state.transaction() as db:
            db.execute(
                "UPDATE outbox SET message = ? WHERE id = ? AND message IS NULL", (text, row["id"])
            )
        return str(
            self.state.db.execute(
                "SELECT message FROM outbox WHERE id = ?", (row["id"],)
            ).fetchone()[0]
        )

    def _failed(self, outbox_id: int, attempts: int, error: str) -> None:
        delay = min(600.0, 2.0 * 2**attempts)
        log.warning(
            "mail %s not sent (try %d, next in %.0f s): %s", outbox_id, attempts, delay, error
        )
        with self.state.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = ?, last_error = ?, next_try = ? WHERE id = ?",
                (attempts, error, time.time() + delay, outbox_id),
            )

    def _send(self, text: str) -> str | None:
        """Deliver to every valid recipient; return what went wrong with the others."""
        from email import message_from_string, policy

        message = message_from_string(text, policy=policy.SMTP)
        wanted = [
            a.strip() for a in str(message.get("X-Kbo-Recipients", "")).split(",") if a.strip()
        ]
        del message["X-Kbo-Recipients"]
        valid = [a for a in wanted if ADDRESS.fullmatch(parseaddr(a)[1] or "")]
        problems = [f"invalid recipient {a!r}" for a in wanted if a not in valid]
        if not valid:
            raise smtplib.SMTPRecipientsRefused({a: (0, b"invalid") for a in wanted})
        config = self.config
        connection = (smtplib.SMTP_SSL if config.smtp_security == "tls" else smtplib.SMTP)(
            config.smtp_host, config.smtp_port, timeout=30
        )
        with connection as smtp:
            if config.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if config.smtp_user:
                smtp.login(config.smtp_user, config.smtp_password)
            refused = smtp.send_message(message, config.mail_from, valid)
        problems += [f"refused {a}: {code} {reply!r}" for a, (code, reply) in refused.items()]
        return "; ".join(problems) or None

    # -- composing -------------------------------------------------------------------

    def compose(self, kind: str, data: dict[str, Any]) -> EmailMessage:
        if kind == "digest":
            return self._message(data["subject"], data["body"], data["recipients"], {})
        jobs = [self._job(entry) for entry in data["jobs"]]
        first = jobs[0]
        if kind == "failure":
            subject, body = self._failure(jobs)
            state = "FAILED"
        else:
            subject, body = self._fixed(jobs, data["jobs"][0])
            state = "FIXED"
        recipients = self._recipients(first, jobs if kind == "failure" else [])
        headers = {
            "X-Kbo-Arch": first["arch"],
            "X-Kbo-Commit": first["commit_sha"],
            "X-Kbo-Flavour": ", ".join(j["flavour"] for j in jobs),
            "X-Kbo-State": state,
        }
        return self._message(subject, body, recipients, headers)

    def _message(
        self, subject: str, body: str, recipients: list[str], headers: dict[str, str]
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.config.mail_from
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="kbo")
        for name, value in headers.items():
            message[name] = value
        message["X-Kbo-Recipients"] = ", ".join(recipients)
        message.set_content(body, charset="utf-8")
        return message

    def _recipients(self, job: dict[str, Any], failed: list[dict[str, Any]]) -> list[str]:
        wanted = list(self.config.mail_to)
        for entry in self.config.arch_recipients:
            arch, _, address = entry.partition(":")
            if arch == job["arch"]:
                wanted.append(address)
        if self.config.mail_authors and failed:
            wanted += [s["email"] for s in failed[0]["suspects"]]
        return list(dict.fromkeys(wanted))

    def _job(self, entry: dict[str, Any]) -> dict[str, Any]:
        db = self.state.db
        job = dict(db.execute("SELECT * FROM jobs WHERE id = ?", (entry["job"],)).fetchone())
        attempt = dict(
            db.execute("SELECT * FROM attempts WHERE id = ?", (job["current_attempt"],)).fetchone()
        )
        version = db.execute(
            "SELECT version FROM runs r JOIN run_jobs rj ON rj.run_id = r.id"
            " WHERE rj.job_id = ? LIMIT 1",
            (job["id"],),
        ).fetchone()
        good = db.execute(
            "SELECT commit_sha FROM jobs WHERE source = ? AND recipe = ? AND arch = ?"
            " AND featureset = ? AND flavour = ? AND state = 'succeeded' AND id != ?"
            " ORDER BY updated_at DESC LIMIT 1",
            (
                job["source"],
                job["recipe"],
                job["arch"],
                job["featureset"],
                job["flavour"],
                job["id"],
            ),
        ).fetchone()
        job |= {
            "attempt": attempt,
            "version": version[0] if version else "?",
            "last_good": good[0] if good else None,
        }
        job["suspects"] = self._suspects(job["source"], job["last_good"], job["commit_sha"])
        return job

    def _suspects(self, source: str, good: str | None, bad: str) -> list[dict[str, str]]:
        try:
            repo = repository.local_repository(source, self.config)
        except Exception as e:
            return [{"sha": "?", "author": "?", "email": "", "subject": f"git unavailable: {e}"}]
        span = f"{good}..{bad}" if good else bad
        out = subprocess.run(
            [
                "git",
                "-C",
                str(repo),
                "log",
                "--format=%h%x00%an%x00%ae%x00%s",
                "--max-count=50",
                span,
                "--",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [
            dict(zip(("sha", "author", "email", "subject"), line.split("\0"), strict=True))
            for line in out.splitlines()
            if line.count("\0") == 3
        ]

    def _failure(self, jobs: list[dict[str, Any]]) -> tuple[str, str]:
        job, attempt = jobs[0], jobs[0]["attempt"]
        flavours = ", ".join(j["flavour"] for j in jobs)
        lines = read_log(attempt["log_path"])
        step = next(
            (
                ln[len("== kbo stage ") : -3]
                for ln in reversed(lines)
                if ln.startswith("== kbo stage ")
            ),
            "?",
        )
        duration = (attempt["ended_at"] or 0) - (attempt["started_at"] or 0)
        subject = (
            f"[kbo] {job['version']}: {job['arch']}/{job['featureset']}/{flavours} "
            f"FAILED at {job['commit_sha'][:7]}"
        )
        error = attempt["first_error"] or "(none found)"
        at = next((i for i, ln in enumerate(lines) if error and error[:60] in ln), None)
        context = lines[max(0, at - 2) : at + 6] if at is not None else [error]
        if job["last_good"]:
            head = (
                f"Suspects: the {len(job['suspects'])} commit(s) since the last successful "
                f"build at {job['last_good'][:7]}:"
            )
        else:
            head = "Suspects: this job never built successfully, so every commit up to here:"
        suspects = [
            f"  {s['sha']} {s['author']} <{s['email']}>  {s['subject']}" for s in job["suspects"]
        ]
        body = "\n".join(
            [
                f"{job['version']} failed to build for {job['arch']} "
                f"at commit {job['commit_sha']}.",
                "",
                "What failed",
                f"  arch / featureset:  {job['arch']} / {job['featureset']}",
                f"  flavours:           {flavours}",
                f"  recipe, stage:      {job['recipe']}, {step}",
                f"  executor, worker:   {attempt['executor']} on {attempt['worker']} "
                f"({attempt['worker_host']})",
                f"  duration:           {duration:.0f} s",
                "",
                "First error",
                *(f"  {ln}" for ln in context),
                "",
                head,
                *suspects,
                "",
                f"Last {TAIL_LINES} log lines",
                *(f"  {ln}" for ln in lines[-TAIL_LINES:]),
                "",
                f"Full log: {self._log_link(job, attempt)}",
                "",
                "Reproduce",
                f"  kbo submit {job['source']} --rev {job['commit_sha']} --recipe {job['recipe']} "
                f"--arch {job['arch']} --featureset {job['featureset']} --flavour {job['flavour']} "
                "--wait",
            ]
        )
        return subject, body + "\n"

    def _fixed(self, jobs: list[dict[str, Any]], entry: dict[str, Any]) -> tuple[str, str]:
        job = jobs[0]
        flavours = ", ".join(j["flavour"] for j in jobs)
        subject = (
            f"[kbo] {job['version']}: {job['arch']}/{job['featureset']}/{flavours} "
            f"FIXED at {job['commit_sha'][:7]}"
        )
        body = (
            f"{job['arch']}/{job['featureset']}/{flavours} builds again.\n\n"
            f"Fixed by commit {job['commit_sha']}.\n"
            f"Failing since commit {entry['failing_since']}, with:\n  {entry['error']}\n"
        )
        return subject, body

    def _log_link(self, job: dict[str, Any], attempt: dict[str, Any]) -> str:
        name = f"{job['arch']}_{job['featureset']}_{job['flavour']}"
        if self.config.log_url:
            return f"{self.config.log_url.rstrip('/')}/{name}/{attempt['id']}.log.gz"
        return str(attempt["log_path"])
