"""Compose kbo's mails from state, git and logs: failure reports, FIXED mails, digests.

Plain text, UTF-8, proper MIME; the full log is linked or named, never attached.
"""

from __future__ import annotations

import gzip
import subprocess
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from kbo.config import Config
from kbo.errors import InfraError
from kbo.orchestrator.last_good import nearest_good
from kbo.orchestrator.state import Attempt, Bisection, Job, StateReader
from kbo.packaging import repository

MAX_LINE = 300
# A mail reads only this much of the end of a log, through chunks of TAIL_CHUNK.
TAIL_BYTES = 4 << 20
TAIL_CHUNK = 256 << 10
TAIL_LINES = 40
# A failure mail lists at most this many suspect commits, and looks for the last good
# build among this many of the job key's newest successes.
MAX_SUSPECTS = 50
STAGE = "== kbo stage "


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
    """The log's lines, of its last ``TAIL_BYTES`` only: a mail quotes the end of a log,
    and a whole log decompressed (32 MiB took 390 MB) would cost the coordinator dear."""
    if not path or not Path(path).exists():
        return []
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data, cut = tail(f.read, TAIL_BYTES)
    except (OSError, EOFError, zlib.error) as e:  # the bytes came from a worker
        return [f"[the log {path} cannot be read: {e}]"]
    lines = clean_lines(data)
    if cut:  # its first line is likely a part of one
        lines[:1] = [f"[... the log's first {cut} bytes cut]"]
    return lines


def tail(read: Callable[[int], bytes], limit: int) -> tuple[bytes, int]:
    """The last ``limit`` bytes of a stream (its ``read``), read through in chunks so
    that no more than about ``limit`` of it is held at once; and how many bytes came
    before them."""
    chunks: deque[bytes] = deque()
    held = total = 0
    while chunk := read(TAIL_CHUNK):
        chunks.append(chunk)
        held += len(chunk)
        total += len(chunk)
        while held - len(chunks[0]) >= limit:
            held -= len(chunks.popleft())
    data = b"".join(chunks)[-limit:] if limit else b""
    return data, total - len(data)


@dataclass(frozen=True)
class Suspect:
    sha: str
    author: str
    email: str
    subject: str


@dataclass(frozen=True)
class JobReport:
    """One job of a report, with what the mail says about it."""

    job: Job
    attempt: Attempt  # the attempt the report was decided on, as the outbox row fixed it
    version: str
    last_good: str | None  # the nearest success that is an ancestor of the job's commit
    suspects: list[Suspect]
    suspect_count: int  # commits in last_good..commit (more than ``suspects`` may list)


@dataclass(frozen=True)
class Bisected:
    """An ended bisection as a mail tells it: the culprit's author and subject, and the
    first error at the culprit."""

    bisection: Bisection
    culprit_commit: Suspect | None
    culprit_error: str | None


class Uncomposable(Exception):
    """A report that names what kbo's state no longer holds."""


class Composer:
    def __init__(self, config: Config, state: StateReader) -> None:
        self.config = config
        self.state = state

    def compose(self, kind: str, data: dict[str, Any]) -> EmailMessage:
        if kind in ("digest", "host"):  # composed when queued
            return self._message(data["subject"], data["body"], data["recipients"], {})
        if kind == "culprit":
            return self._culprit(self._bisection(data))
        reports = [self._report(entry) for entry in data["jobs"]]
        first = reports[0].job
        suspects = reports[0].suspects
        if kind == "failure":
            bisected = self._bisection(data) if "bisection" in data else None
            subject, body = self._failure(reports, bisected)
            state = "FAILED"
            if bisected is not None and bisected.culprit_commit is not None:
                suspects = [bisected.culprit_commit]
        else:
            subject, body = self._fixed(reports, data["jobs"][0])
            state = "FIXED"
        recipients = self._recipients(first, suspects if kind == "failure" else [])
        headers = {
            "X-Kbo-Arch": first.arch,
            "X-Kbo-Commit": first.commit,
            "X-Kbo-Flavour": ", ".join(r.job.flavour for r in reports),
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

    def _recipients(self, job: Job, suspects: list[Suspect]) -> list[str]:
        wanted = list(self.config.mail_to)
        for entry in self.config.arch_recipients:
            arch, _, address = entry.partition(":")
            if arch == job.arch:
                wanted.append(address)
        if self.config.mail_authors:
            wanted += [s.email for s in suspects]
        return list(dict.fromkeys(wanted))

    def _report(self, entry: dict[str, Any]) -> JobReport:
        """The job of an outbox entry and the attempt the entry names, with the facts the
        entry fixed when the report was decided (rows from before it did: the job's
        current attempt)."""
        job = self.state.job(entry["job"])
        if job is None:
            raise Uncomposable(f"job {entry['job']} does not exist")
        attempt_id = entry.get("attempt", job.current_attempt)
        attempt = None if attempt_id is None else self.state.attempt(attempt_id)
        if attempt is None or attempt.job_id != job.id:
            raise Uncomposable(f"attempt {attempt_id} of job {job.id} does not exist")
        if "first_error" in entry or "log_path" in entry:
            attempt = replace(
                attempt,
                first_error=_text(entry, "first_error"),
                log_path=_text(entry, "log_path"),
            )
        last_good, count, suspects = self._suspects(job)
        return JobReport(
            job, attempt, self.state.version_of_job(job.id) or "?", last_good, suspects, count
        )

    def _suspects(self, job: Job) -> tuple[str | None, int, list[Suspect]]:
        """The commits that may have broken the job: ``git rev-list LAST_GOOD..COMMIT``,
        LAST_GOOD being the nearest earlier success of the job's key that is an ancestor
        of its commit; with none, the commit alone."""
        try:
            repo = repository.local_repository(job.source, self.config, fetch=False)
        except Exception as e:
            return None, 1, [Suspect("?", "?", "", f"git unavailable: {e}")]
        good = nearest_good(self.state, repo, job)
        if good is None:
            return None, 1, _log(repo, "--max-count=1", job.commit)
        count = _count(repo, f"{good}..{job.commit}")
        return good, count, _log(repo, f"--max-count={MAX_SUSPECTS}", f"{good}..{job.commit}")

    def _bisection(self, data: dict[str, Any]) -> Bisected:
        """The ended bisection a mail names, with the culprit's author and first error."""
        bisection_id = data.get("bisection")
        if not isinstance(bisection_id, int) or isinstance(bisection_id, bool):
            raise Uncomposable(f"its bisection is not an id: {bisection_id!r:.60}")
        b = self.state.bisection(bisection_id)
        if b is None:
            raise Uncomposable(f"bisection {bisection_id} does not exist")
        culprit, error = None, None
        if b.culprit is not None:
            try:
                repo = repository.local_repository(b.source, self.config, fetch=False)
                found = _log(repo, "--max-count=1", b.culprit)
            except Exception as e:
                found = [Suspect(b.culprit[:12], "?", "", f"git unavailable: {e}")]
            culprit = found[0] if found else Suspect(b.culprit[:12], "?", "", "?")
            error = self.state.key_results(b).get(b.culprit, ("", None, None))[2]
        return Bisected(b, culprit, error)

    def _bisection_lines(self, bisected: Bisected) -> list[str]:
        b = bisected.bisection
        span = f"{len(b.commits)} commits since {b.good[:12]}, first-parent"
        lines = []
        if b.culprit is not None and bisected.culprit_commit is not None:
            c = bisected.culprit_commit
            lines += [
                f"First bad commit (bisected in {b.steps} builds over the {span}):",
                f"  {b.culprit}",
                f"  author:  {c.author} <{c.email}>",
                f"  subject: {c.subject}",
                f"  first error there: {bisected.culprit_error or b.first_error or '(none found)'}",
            ]
        elif b.state == "skipped":
            lines += [
                f"Bisection ({b.steps} builds over the {span}) could not name one commit:",
                f"  the first bad commit is {b.high} or one of the commits skipped between "
                f"{(b.low or b.good)[:12]} (good) and it.",
            ]
        else:
            lines += [
                f"Bisection stopped after {b.steps} builds (its limit) over the {span}:",
                f"  the first bad commit is after {(b.low or b.good)[:12]} (good), at or "
                f"before {(b.high or b.bad)[:12]} (bad).",
            ]
        if b.skipped:
            lines.append(
                "  skipped (another first error, or not built for the hosts' sake): "
                + ", ".join(sha[:12] for sha in b.skipped)
            )
        return lines

    def _culprit(self, bisected: Bisected) -> EmailMessage:
        """The mail that follows a failure mail that could not wait for its bisection."""
        b = bisected.bisection
        job = self.state.job(b.job_id)
        if job is None:
            raise Uncomposable(f"job {b.job_id} does not exist")
        version = self.state.version_of_job(job.id) or "?"
        what = b.culprit[:7] if b.culprit else "not found"
        subject = (
            f"[kbo] {version}: {job.arch}/{job.featureset}/{job.flavour} first bad commit {what}"
        )
        body = "\n".join(
            [
                f"{job.arch}/{job.featureset}/{job.flavour} ({b.recipe}) failed at {b.bad}",
                f"with: {b.first_error or '(none found)'}",
                "The failure was mailed before this bisection ended.",
                "",
                *self._bisection_lines(bisected),
            ]
        )
        culprits = [bisected.culprit_commit] if bisected.culprit_commit else []
        headers = {
            "X-Kbo-Arch": job.arch,
            "X-Kbo-Commit": b.culprit or b.bad,
            "X-Kbo-Flavour": job.flavour,
            "X-Kbo-State": "BISECTED",
        }
        return self._message(subject, body + "\n", self._recipients(job, culprits), headers)

    def _failure(self, reports: list[JobReport], bisected: Bisected | None) -> tuple[str, str]:
        report = reports[0]
        job, attempt = report.job, report.attempt
        flavours = ", ".join(r.job.flavour for r in reports)
        lines = read_log(attempt.log_path)
        stages = (ln[len(STAGE) : -3] for ln in reversed(lines) if ln.startswith(STAGE))
        step = next(stages, "?")
        duration = (attempt.ended_at or 0) - (attempt.started_at or 0)
        subject = (
            f"[kbo] {report.version}: {job.arch}/{job.featureset}/{flavours} "
            f"FAILED at {job.commit[:7]}"
        )
        if bisected is not None and bisected.bisection.culprit:
            subject += f", first bad commit {bisected.bisection.culprit[:7]}"
        error = attempt.first_error or "(none found)"
        at = next((i for i, ln in enumerate(lines) if error and error[:60] in ln), None)
        context = lines[max(0, at - 2) : at + 6] if at is not None else [error]
        if report.last_good:
            head = (
                f"Suspects: the {report.suspect_count} commit(s) since the last successful "
                f"build at {report.last_good[:7]}:"
            )
        else:
            head = (
                "Suspects: no earlier build of this job succeeded at an ancestor of this "
                "commit, so only its author:"
            )
        suspects = [f"  {s.sha} {s.author} <{s.email}>  {s.subject}" for s in report.suspects]
        if report.suspect_count > len(report.suspects):
            suspects.append(f"  ... and {report.suspect_count - len(report.suspects)} more")
        body = "\n".join(
            [
                f"{report.version} failed to build for {job.arch} at commit {job.commit}.",
                "",
                "What failed",
                f"  arch / featureset:  {job.arch} / {job.featureset}",
                f"  flavours:           {flavours}",
                f"  recipe, stage:      {job.recipe}, {step}",
                f"  executor, worker:   {attempt.executor} on {attempt.worker} "
                f"({attempt.worker_host})",
                f"  duration:           {duration:.0f} s",
                "",
                "First error",
                *(f"  {ln}" for ln in context),
                "",
                *([*self._bisection_lines(bisected), ""] if bisected is not None else []),
                head,
                *suspects,
                "",
                f"Last {TAIL_LINES} log lines",
                *(f"  {ln}" for ln in lines[-TAIL_LINES:]),
                "",
                f"Full log: {self._log_link(job, attempt)}",
                "",
                "Reproduce",
                f"  kbo submit {job.source} --rev {job.commit} --recipe {job.recipe} "
                f"--arch {job.arch} --featureset {job.featureset} --flavour {job.flavour} "
                "--wait",
            ]
        )
        return subject, body + "\n"

    def _fixed(self, reports: list[JobReport], entry: dict[str, Any]) -> tuple[str, str]:
        report = reports[0]
        job = report.job
        flavours = ", ".join(r.job.flavour for r in reports)
        subject = (
            f"[kbo] {report.version}: {job.arch}/{job.featureset}/{flavours} "
            f"FIXED at {job.commit[:7]}"
        )
        body = (
            f"{job.arch}/{job.featureset}/{flavours} builds again.\n\n"
            f"Fixed by commit {job.commit}.\n"
            f"Failing since commit {entry['failing_since']}, with:\n  {entry['error']}\n"
        )
        if self.config.web_url:
            body += f"\nHistory: {self.config.web_url.rstrip('/')}/jobs/{job.id}/history\n"
        return subject, body

    def _log_link(self, job: Job, attempt: Attempt) -> str:
        """The attempt's log page on `kbo web` when ``web_url`` is set (the first error
        highlighted); else under ``log_url``; else the coordinator's own path."""
        if attempt.log_path is None:
            return "(no log was received)"
        if self.config.web_url:
            return f"{self.config.web_url.rstrip('/')}/attempts/{attempt.id}/log#first-error"
        if self.config.log_url:
            return f"{self.config.log_url.rstrip('/')}/{job.key}/{attempt.id}.log.gz"
        return str(attempt.log_path)


def _text(entry: dict[str, Any], name: str) -> str | None:
    value = entry.get(name)
    if value is not None and not isinstance(value, str):
        raise Uncomposable(f"its {name} is not text: {value!r:.60}")
    return value


def _git_out(repo: Path, *args: str) -> str:
    """git's output, as text whatever its bytes (an author's name need not be UTF-8)."""
    try:
        result = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, check=False, timeout=120
        )
    except subprocess.TimeoutExpired:
        raise InfraError(f"git {args[0]} timed out", str(repo)) from None
    return result.stdout.decode("utf-8", errors="replace")


def _count(repo: Path, span: str) -> int:
    out = _git_out(repo, "rev-list", "--count", "--end-of-options", span, "--").strip()
    return int(out) if out.isdigit() else 0


def _log(repo: Path, limit: str, span: str) -> list[Suspect]:
    out = _git_out(
        repo, "log", "--format=%h%x00%an%x00%ae%x00%s", limit, "--end-of-options", span, "--"
    )
    return [Suspect(*line.split("\0")) for line in out.splitlines() if line.count("\0") == 3]
