"""The standings at HEAD as ``kbo web`` serves them, kept for a moment: ``GET /api/status``
and the dashboard's grid ask for them on every request (each open dashboard every few
seconds), and computing them runs git and reads the jobs near HEAD.

A board is reused while HEAD of the tracked branch and the state database are unchanged
(the database's and its WAL's size and time of change), checked at most every
``CHECK_SECONDS``, and is never older than ``MAX_AGE`` (a worker stops being live
without any write). One request computes it while the others wait for it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kbo.config import Config
from kbo.errors import KboError
from kbo.orchestrator import documents
from kbo.orchestrator.documents import StatusReport
from kbo.orchestrator.standings import Standings, compute
from kbo.orchestrator.state import Attempt, Job, Run, StateReader
from kbo.packaging import repository
from kbo.web.auth import reading

CHECK_SECONDS = 2.0
MAX_AGE = 30.0
FIRST_CHUNK = 16
RUNS = 10
NEWEST_SEARCH = 1000  # commits back from HEAD that a flavour's newest job is looked for in

Key = tuple[str, str, str]  # arch, featureset, flavour


@dataclass(frozen=True)
class Newest:
    """A flavour's newest job and its current attempt: what a grid cell links to."""

    job: Job
    attempt: Attempt | None


@dataclass(frozen=True)
class Board:
    standings: Standings
    report: StatusReport
    newest: dict[Key, Newest]
    runs: list[Run]  # the newest runs, for the grid's list
    # What was made of it within the current second (the status document, the grid's
    # page): made once a second however many ask.
    made: dict[tuple[str, int], bytes] = field(default_factory=dict, compare=False)

    def each_second(self, what: str, now: float, make: Callable[[], bytes]) -> bytes:
        """``make()``, made again when the second has changed since it was last made."""
        key = (what, int(now))
        found = self.made.get(key)
        if found is None:
            found = make()
            if len(self.made) > 8:
                self.made.clear()
            self.made[key] = found
        return found


def build(config: Config, recipe: str, state: StateReader) -> Board:
    """The standings (read as last fetched), their status document, and the newest job
    of each tracked flavour."""
    found = compute(config, recipe, state, fetch=False)
    return Board(
        found,
        documents.report_of(config, found, state),
        _newest(config, state, found),
        state.recent_runs(RUNS),
    )


def _newest(config: Config, state: StateReader, found: Standings) -> dict[Key, Newest]:
    """Read newest commit first, in chunks that double, as the standings are: a flavour
    built at HEAD costs one lookup."""
    wanted: set[Key] = set()
    for arch in found.arches:
        for flavour in arch.flavours:
            name, featureset, flavour_name = flavour.name.split("/")
            wanted.add((name, featureset, flavour_name))
    source = repository.source_id(config.repository)
    commits = [c.sha for c in found.history[:NEWEST_SEARCH]]
    jobs: dict[Key, Job] = {}
    start, size = 0, FIRST_CHUNK
    while start < len(commits):
        pending = sorted({k[0] for k in wanted if k not in jobs})
        if not pending:
            break
        chunk = commits[start : start + size]
        order = {sha: i for i, sha in enumerate(chunk)}
        for job in sorted(
            state.jobs_at(source, found.recipe, pending, chunk), key=lambda j: order[j.commit]
        ):
            key = (job.arch, job.featureset, job.flavour)
            if key in wanted:
                jobs.setdefault(key, job)
        start, size = start + size, size * 2
    attempts = state.attempts_by_id(j.current_attempt for j in jobs.values() if j.current_attempt)
    return {key: Newest(job, attempts.get(job.current_attempt or 0)) for key, job in jobs.items()}


@dataclass
class _Kept:
    board: Board
    key: tuple[object, ...]
    made: float
    checked: float


class Boards:
    """The board of each recipe asked for, kept while nothing changed (see above)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._kept: dict[str, _Kept] = {}

    def get(self, recipe: str) -> Board:
        with self._lock:
            now = time.monotonic()
            kept = self._kept.get(recipe)
            if kept is not None and now - kept.checked < CHECK_SECONDS:
                return kept.board
            key = self._key()
            if kept is not None and kept.key == key and now - kept.made < MAX_AGE:
                kept.checked = now
                return kept.board
            with reading(self.config) as state:
                board = build(self.config, recipe, state)
            self._kept[recipe] = _Kept(board, key, now, now)
            return board

    def _key(self) -> tuple[object, ...]:
        """What a board depends on: HEAD of the tracked branch, and the database's last
        change as its files show it."""
        try:
            repo = repository.local_repository(self.config.repository, self.config, fetch=False)
            head = repository.resolve(repo, self.config.branch)
        except KboError as e:
            head = f"error: {e}"  # computing the board says so
        database = self.config.database
        return (head, _changed(database), _changed(Path(f"{database}-wal")))


def _changed(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_size)
