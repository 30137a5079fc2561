"""When a result deserves a mail, and which: one per new failure, one FIXED on recovery.

A failure mails when it is the first of its (arch, featureset, flavour) after a success,
or its first ever. A retry, or a failure at a later commit with the same first error,
mails nothing. Flavours of one arch failing at one commit with the same error within
``fold_seconds`` fold into one mail. Reports go to the outbox first; the sender mails them.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from orchestrator.config import Config
from orchestrator.state import State


def normalise(error: str | None) -> str:
    """The error as it would read at another commit: no build paths, no line numbers."""
    text = (error or "").replace("/build/src/", "")
    return re.sub(r":\d+(:\d+)?:", ":N:", text).strip()


class Reporter:
    def __init__(self, config: Config, state: State) -> None:
        self.config = config
        self.state = state

    def on_result(self, attempt_id: int) -> None:
        row = self.state.db.execute(
            "SELECT j.*, a.first_error FROM attempts a JOIN jobs j ON j.id = a.job_id"
            " WHERE a.id = ?",
            (attempt_id,),
        ).fetchone()
        if row is None or row["current_attempt"] != attempt_id:
            return
        key = (row["source"], row["recipe"], row["arch"], row["featureset"], row["flavour"])
        with self.state.transaction() as db:
            alert = db.execute(
                "SELECT * FROM alerts WHERE source = ? AND recipe = ? AND arch = ?"
                " AND featureset = ? AND flavour = ?",
                key,
            ).fetchone()
            if row["state"] == "failed":
                if alert is not None and normalise(alert["first_error"]) == normalise(
                    row["first_error"]
                ):
                    return  # already reported: a retry, or the same failure at a later commit
                db.execute(
                    "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (*key, row["first_error"] or "", row["commit_sha"]),
                )
                fold = "|".join(
                    ("failure", *key[:3], row["commit_sha"], normalise(row["first_error"]))
                )
                self._queue(db, "failure", fold, row["id"], self.config.fold_seconds)
            elif row["state"] == "succeeded" and alert is not None:
                db.execute(
                    "DELETE FROM alerts WHERE source = ? AND recipe = ? AND arch = ?"
                    " AND featureset = ? AND flavour = ?",
                    key,
                )
                fold = "|".join(("fixed", *key[:3], row["commit_sha"]))
                self._queue(
                    db,
                    "fixed",
                    fold,
                    row["id"],
                    self.config.fold_seconds,
                    {"failing_since": alert["since_commit"], "error": alert["first_error"]},
                )

    @staticmethod
    def _queue(
        db: Any,
        kind: str,
        fold: str,
        job_id: int,
        delay: float,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Add the job to a report not yet composed with the same fold key, or start one."""
        open_report = db.execute(
            "SELECT id, data FROM outbox WHERE fold_key = ? AND message IS NULL"
            " AND state = 'pending'",
            (fold,),
        ).fetchone()
        if open_report is not None:
            data = json.loads(open_report["data"])
            data["jobs"].append({"job": job_id} | (extra or {}))
            db.execute(
                "UPDATE outbox SET data = ? WHERE id = ?", (json.dumps(data), open_report["id"])
            )
            return
        now = time.time()
        db.execute(
            "INSERT INTO outbox (kind, fold_key, data, created_at, due_at, next_try)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                kind,
                fold,
                json.dumps({"jobs": [{"job": job_id} | (extra or {})]}),
                now,
                now + delay,
                now,
            ),
        )
