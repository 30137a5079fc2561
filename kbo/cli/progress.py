"""What a client waiting on a run shows.

On a terminal: a table redrawn in place (plain ANSI: cursor up, clear), one row per job
with its state, the stage its worker last reported, how long it has run, and where. Piped
(cron, a log file): one line per change, as before, so the output stays greppable.
"""

from __future__ import annotations

import collections
import time
from typing import Any, TextIO

from kbo.cli.table import format_age, format_table

PROGRESS_SECONDS = 30  # piped: at least one line this often, so a long build shows life


class Progress:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.live = out.isatty()
        self.start = self.last_line = time.monotonic()
        self.seen: dict[str, str] = {}
        self.drawn = 0

    def elapsed(self) -> str:
        return f"[{time.monotonic() - self.start:7.1f}s]"

    def note(self, text: str) -> None:
        """A line that is not a job's state: kept above the live table."""
        self._clear()
        print(f"{self.elapsed()} {text}", file=self.out, flush=True)

    def update(self, jobs: list[dict[str, Any]]) -> None:
        if self.live:
            self._draw(jobs)
        else:
            self._lines(jobs)

    def _lines(self, jobs: list[dict[str, Any]]) -> None:
        if time.monotonic() - self.last_line >= PROGRESS_SECONDS:
            counts = collections.Counter(job["state"] for job in jobs)
            self.note(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
            self.last_line = time.monotonic()
        for job in jobs:
            if self.seen.get(job["name"]) != job["state"]:
                self.seen[job["name"]] = job["state"]
                where = f" on {job['worker']}" if job.get("worker") else ""
                executor = f" ({job['executor']})" if job.get("executor") else ""
                self.note(f"{job['name']}: {job['state']}{where}{executor}")
                self.last_line = time.monotonic()

    def _draw(self, jobs: list[dict[str, Any]]) -> None:
        now = time.time()
        counts = collections.Counter(job["state"] for job in jobs)
        rows = [
            [
                job["name"],
                job["state"],
                (job.get("stage") or "-") if job["state"] == "running" else "-",
                _ran(job, now),
                job.get("worker") or "-",
            ]
            for job in jobs
        ]
        text = "\n".join(
            [
                f"{self.elapsed()} "
                + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())),
                format_table(["JOB", "STATE", "STAGE", "RAN", "WORKER"], rows),
            ]
        )
        self._clear()
        print(text, file=self.out, flush=True)
        self.drawn = text.count("\n") + 1

    def _clear(self) -> None:
        if self.live and self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")  # up to the table's first line, clear
            self.drawn = 0


def _ran(job: dict[str, Any], now: float) -> str:
    started = job.get("started_at")
    if not started:
        return "-"
    return format_age(max(0.0, (job.get("ended_at") or now) - started))
