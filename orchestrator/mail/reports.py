"""When a result deserves a mail, and which: one per new failure, one FIXED on recovery.

A failure mails when it is the first of its (arch, featureset, flavour) after a success,
or its first ever. A retry, or a failure at a later commit with the same first error,
mails nothing. Flavours of one arch failing at one commit with the same error within
``fold_seconds`` fold into one mail. Reports go to the outbox first, with what they say of
the attempt that ended (``failed_attempt``); the sender mails them.
"""

from __future__ import annotations

import re
import time
from typing import Any

from kbo.config import Config
from kbo.orchestrator.state import Attempt, Job, State


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

    def on_result(self, attempt_id: int) -> None:
        job = self.state.job_of_attempt(attempt_id)
        if job is None or job.current_attempt != attempt_id:
            return
        attempt = self.state.attempt(attempt_id)
        assert attempt is not None
        error = attempt.first_error
        delay, now = self.config.fold_seconds, time.time()
        with self.state.transaction() as tx:
            alert = tx.alert(job)
            if job.state == "failed":
                if alert is not None and normalise(alert.first_error) == normalise(error):
                    return  # already reported: a retry, or the same failure at a later commit
                tx.raise_alert(job, error or "")
                fold = "|".join(
                    ("failure", job.source, job.recipe, job.arch, job.commit, normalise(error))
                )
                tx.queue_report("failure", fold, failed_attempt(job, attempt), delay, now)
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
