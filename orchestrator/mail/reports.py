"""When a result deserves a mail, and which: one per new failure, one FIXED on recovery.

A failure mails when it is the first of its (arch, featureset, flavour) after a success,
or its first ever. A retry, or a failure at a later commit with the same first error,
mails nothing. Flavours of one arch failing at one commit with the same error within
``fold_seconds`` fold into one mail. Reports go to the outbox first, with what they say of
the attempt that ended (``failed_attempt``); the sender mails them. A failure mail may be
held back for its bisection (``orchestrator/bisections.py``), whose builds are never
mailed themselves.

An infra-error is never mailed to authors. When one host has ``host_alert_errors`` of them
within a day, ``admin_mail_to`` gets one mail naming the host and what failed there, and no
other about that host for a day.
"""

from __future__ import annotations

import re
import time
from typing import Any

from kbo.config import Config
from kbo.orchestrator.state import Attempt, Job, State
from kbo.packaging.matrix import job_key

HOST_WINDOW = 86400  # a host's infra-errors are counted, and it is mailed about, per day


def normalise(error: str | None) -> str:
    """The error as it would read at another commit: no build paths, no line numbers."""
    text = (error or "").replace("/build/src/", "")
    return re.sub(r":\d+(:\d+)?:", ":N:", text).strip()


def failed_attempt(job: Job, attempt: Attempt) -> dict[str, Any]:
    """What a failure report says of the attempt that failed, fixed as the report is
    decided: by the time it is sent, the job's current attempt may be a retry."""
    return {
        "job": job.id,
        "attempt": attempt.id,
        "commit": job.commit,
        "first_error": attempt.first_error,
        "log_path": attempt.log_path,
    }


class Reporter:
    def __init__(self, config: Config, state: State) -> None:
        self.config = config
        self.state = state

    def on_result(self, attempt_id: int) -> int | None:
        """Queue the report an attempt's result calls for; the id of the failure report
        it queued (or joined), else None. A build a bisection queued is the bisection's:
        it is never mailed, nor does it raise or clear an alert."""
        job = self.state.job_of_attempt(attempt_id)
        attempt = self.state.attempt(attempt_id)
        if job is None or attempt is None:
            return None
        if attempt.state == "infra-error" and attempt.worker_host:
            self._on_host_error(attempt.worker_host)
        if job.current_attempt != attempt_id or self.state.bisecting(job.id):
            return None
        error = attempt.first_error
        delay, now = self.config.fold_seconds, time.time()
        with self.state.transaction() as tx:
            alert = tx.alert(job)
            if job.state == "failed":
                if alert is not None and normalise(alert.first_error) == normalise(error):
                    return None  # already reported: a retry, or the same failure later on
                tx.raise_alert(job, error or "")
                fold = "|".join(
                    ("failure", job.source, job.recipe, job.arch, job.commit, normalise(error))
                )
                return tx.queue_report("failure", fold, failed_attempt(job, attempt), delay, now)
            elif job.state == "succeeded" and alert is not None:
                tx.clear_alert(job)
                fold = "|".join(("fixed", job.source, job.recipe, job.arch, job.commit))
                entry = {
                    "job": job.id,
                    "attempt": attempt.id,
                    "commit": job.commit,
                    "failing_since": alert.since_commit,
                    "error": alert.first_error,
                }
                tx.queue_report("fixed", fold, entry, delay, now)
        return None

    def _on_host_error(self, host: str) -> None:
        """Mail the admins, once a day, about a host that keeps failing builds."""
        config, now = self.config, time.time()
        if not config.admin_mail_to or not config.smtp_host:
            return
        fold, since = f"host|{host}", now - HOST_WINDOW
        with self.state.transaction() as tx:
            errors = tx.host_infra_errors(host, since)
            if len(errors) < config.host_alert_errors or tx.mailed_since("host", fold, since):
                return
            subject, body = host_alert(host, errors)
            data = {"subject": subject, "body": body, "recipients": list(config.admin_mail_to)}
            tx.queue_mail("host", data, now, due=now, fold=fold)


def host_alert(host: str, errors: list[dict[str, Any]]) -> tuple[str, str]:
    """Subject and body of the admins' mail about ``host``, fixed when it is decided."""
    lines = [
        f"The build host {host} ended {len(errors)} build attempts infra-error in the last "
        "day: the host or a service it uses failed, not the commits. Each was retried; "
        "no author was mailed. `kbo workers` shows the host, `kbo status` what waits.",
        "",
    ]
    for e in errors[:20]:
        key = job_key(e["arch"], e["featureset"], e["flavour"])
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(e["ended_at"] or 0))
        lines.append(f"  {when}  {key} at {e['commit_sha'][:12]} on {e['worker']}")
        lines.append(f"    {e['first_error'] or '(no error given)'}")
    return f"[kbo] host {host}: {len(errors)} infra-errors in a day", "\n".join(lines) + "\n"
