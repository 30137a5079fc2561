"""Bisections run by the coordinator: started on a new failure or by `kbo bisect`,
advanced by each result of their job key, ended with the first bad commit mailed.

A bisection's builds are ordinary jobs of ordinary runs (reason ``bisect N``), queued,
claimed and leased like any other; a job that already exists is reused, and a result
already in the ledger is read, never rebuilt. Where a bisection stands is computed
again from the ledger at every result (``orchestrator/bisect.py``), so a repeated
report, or one that comes late, cannot advance it twice: the next step's run has an id
made from the bisection and the commit, and recording a run twice queues nothing.

Flavours failing alike at one commit share one failure mail, and one bisection: the
first's. The failure mail that a new failure queued waits for its bisection when the bisection
should end within ``bisect_mail_wait`` (its builds times the job key's recent build
duration): until it ends, or that long at most. It then names the first bad commit.
Otherwise, or when the wait ran out, the failure mail goes as it is and a mail of kind
'culprit' follows when the bisection ends.
"""

from __future__ import annotations

import logging
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from kbo.config import Config
from kbo.errors import KboError
from kbo.orchestrator.bisect import Result, most_builds, plan
from kbo.orchestrator.last_good import nearest_good
from kbo.orchestrator.mail.reports import normalise
from kbo.orchestrator.matrices import Matrices
from kbo.orchestrator.state import Attempt, Bisection, Job, JobSpec, Run, State
from kbo.packaging import repository

log = logging.getLogger("kbo.bisect")
# Which of the job key's successes may be the good commit: the nearest ancestor among
# this many of the newest (as failure mails look for it).
# The builds a bisection is estimated to take are this many of the job key's recent ones.
RECENT_BUILDS = 5
# Run ids of a bisection's steps: the same bisection and commit make the same run id.
RUN_NAMESPACE = uuid.UUID("2f0c6a43-5d0e-4b8e-9a43-6b626f626973")


@dataclass(frozen=True)
class Started:
    """What starting a bisection did: the bisection (None, with why, when there is none
    to run) and whether this call made it."""

    bisection: Bisection | None
    reason: str = ""
    made: bool = False


def classify(
    found: dict[str, tuple[str, str | None, str | None]], error: str | None
) -> dict[str, Result]:
    """Each commit's result for the planner, from its job (``key_results``): good when
    it succeeded, bad when it failed with ``error`` (normalised), pending while queued,
    running or waiting for an infra-error's retry, unknown when superseded (never
    built), else skip."""
    wanted = normalise(error)
    results: dict[str, Result] = {}
    for commit, (state, current, first_error) in found.items():
        if state == "succeeded":
            results[commit] = "good"
        elif state == "failed":
            results[commit] = "bad" if normalise(first_error) == wanted else "skip"
        elif state in ("queued", "running") or (state == "infra-error" and current == "queued"):
            results[commit] = "pending"
        elif state != "superseded":  # never built: unknown, the bisection queues it again
            results[commit] = "skip"  # dep-wait, lost, cancelled, out of infra-error retries
    return results


class Bisector:
    def __init__(self, config: Config, state: State, publish: Callable[[list[int]], None]):
        self.config = config
        self.state = state
        self.publish = publish

    # -- starting ----------------------------------------------------------------------

    def on_failure(self, job: Job, attempt: Attempt, mail_id: int | None) -> None:
        """A new failure (its report queued as ``mail_id``): bisect it when A..B holds
        more than one commit and ``bisect_max_steps`` allows."""
        if self.config.bisect_max_steps == 0 or job.state != "failed" or mail_id is None:
            return
        if (other := self.state.bisection_holding(mail_id)) is not None:
            # Flavours of the arch failing alike at this commit share one mail: the
            # bisection of the first of them names the culprit for all.
            log.info("%s at %s: bisection %s covers it", job.key, job.commit[:12], other.id)
            return
        try:
            started = self.start(job, attempt, "kbo", self.config.bisect_max_steps, mail_id)
        except KboError as e:  # git could not say: the failure mail goes as it is
            log.warning("%s at %s: no bisection: %s", job.key, job.commit[:12], e)
            return
        if started.bisection is None:
            log.info("%s at %s: no bisection: %s", job.key, job.commit[:12], started.reason)

    def start(
        self, job: Job, attempt: Attempt, by: str, max_steps: int, mail_id: int | None = None
    ) -> Started:
        """Bisect what broke ``job`` (it failed): between the nearest earlier success of
        its key that is an ancestor of its commit and that commit. The bisection already
        made for it, if any."""
        existing = self.state.bisection_of(job)
        if existing is not None:
            return Started(existing)
        repo = repository.local_repository(job.source, self.config, fetch=False)
        good = nearest_good(self.state, repo, job)
        if good is None:
            return Started(None, "no earlier success of its job key is an ancestor of its commit")
        commits = repository.first_parent_range(repo, good, job.commit)
        if len(commits) < 2:
            return Started(None, f"its commit is the only one since the success at {good[:12]}")
        now = time.time()
        record = Bisection(
            0,
            job.source,
            job.recipe,
            job.arch,
            job.featureset,
            job.flavour,
            job.kernel_arch,
            good,
            job.commit,
            job.id,
            attempt.first_error,
            commits,
            max_steps,
            "running",
            0,
            None,
            job.commit,
            None,
            [],
            None,
            mail_id,
            by,
            now,
            None,
        )
        bisection, made = self.state.start_bisection(record)
        if made:
            builds = min(most_builds(len(commits)), max_steps)
            estimate = builds * self._build_seconds(job, attempt)
            held = (
                mail_id is not None
                and estimate <= self.config.bisect_mail_wait
                and self.state.hold_mail(mail_id, now + self.config.bisect_mail_wait)
            )
            log.info(
                "%s: bisecting %d commits %s..%s, about %d builds (%.0f s): the failure mail %s",
                job.key,
                len(commits),
                good[:12],
                job.commit[:12],
                builds,
                estimate,
                "waits for it" if held else "goes now",
            )
            self.advance(bisection)
        return Started(self.state.bisection(bisection.id), made=made)

    def _build_seconds(self, job: Job, attempt: Attempt) -> float:
        """How long one of the job key's builds takes: the median of its recent
        successes, else the failed attempt's own duration."""
        durations = [d for _, d in self.state.build_durations(job, RECENT_BUILDS)]
        if durations:
            return float(statistics.median(durations))
        return max(0.0, (attempt.ended_at or 0.0) - (attempt.started_at or 0.0))

    # -- advancing ---------------------------------------------------------------------

    def on_result(self, job: Job) -> None:
        """A result of a job key: advance each running bisection it is a step of."""
        for bisection in self.state.bisections_of_key(job):
            if job.commit in bisection.commits:
                self.advance(bisection)

    def advance(self, b: Bisection) -> None:
        """Queue the next build, or record the verdict and release the mail."""
        results = classify(self.state.key_results(b), b.first_error)
        builds = self.state.bisection_builds(b.id)
        step = plan(b.commits, results, builds, b.max_steps)
        building = step.pending[0] if step.pending else None
        if step.next is not None:
            self._queue(b, step.next)
            builds, building = self.state.bisection_builds(b.id), step.next
        now = time.time()
        progress = replace(
            b,
            state=step.ending or "running",
            steps=builds,
            low=step.good or b.good,
            high=step.bad,
            culprit=step.culprit,
            skipped=list(step.skipped),
            building=building,
            ended_at=now if step.done else None,
        )
        if not self.state.bisection_progress(progress) or not step.done:
            return
        log.info(
            "%s: bisection %s %s after %d builds: %s",
            b.key,
            b.id,
            progress.state,
            builds,
            (step.culprit or f"between {progress.low} and {progress.high}")[:40],
        )
        self._tell(progress, now)

    def _queue(self, b: Bisection, commit: str) -> None:
        repo = repository.local_repository(b.source, self.config, fetch=False)
        version, _ = Matrices(repo, b.source, self.state).at(commit)
        run = Run(
            id=str(uuid.uuid5(RUN_NAMESPACE, f"{b.id} {commit}")),
            submitter=b.started_by,
            reason=f"bisect {b.id}",
            source=b.source,
            rev=commit,
            commit=commit,
            recipe=b.recipe,
            version=version,
        )
        spec = JobSpec(b.source, commit, b.recipe, b.arch, b.featureset, b.flavour, b.kernel_arch)
        self.publish(self.state.record_run(run, [spec]))

    def _tell(self, b: Bisection, now: float) -> None:
        """The held failure mail now names the verdict; when it went already (or there
        is none), a mail of its own does."""
        if b.mail_id is not None and self.state.release_mail_with(
            b.mail_id, "bisection", b.id, now
        ):
            return
        fold = f"culprit|{b.id}"
        with self.state.transaction() as tx:
            if not tx.mailed_since("culprit", fold, 0.0):
                tx.queue_mail("culprit", {"bisection": b.id}, now, due=now, fold=fold)
