"""The coordinator: the only writer of kbo's state.

It plans submissions, records runs and jobs, hands attempts to workers that claim
them, records their reports, and sweeps lapsed leases. Every Celery task here is
idempotent: re-delivery or a repeated report changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from celery import Celery

from kbo import messaging, recipes
from kbo.config import Config
from kbo.errors import KboError
from kbo.orchestrator import snapshot_plan, standings, status_page
from kbo.orchestrator.mail import digest
from kbo.orchestrator.mail.outbox import Mailer
from kbo.orchestrator.mail.reports import Reporter
from kbo.orchestrator.matrices import Matrices
from kbo.orchestrator.retries import RetryPolicy
from kbo.orchestrator.state import JobSpec, Run, State
from kbo.packaging import repository
from kbo.packaging.matrix import Matrix, Selection, representatives, select

log = logging.getLogger("kbo.coordinator")

# The largest compressed log a report may carry: a worker sends at most 16 MiB
# (workers/build.py MAX_SHIPPED_LOG; the two sides never import each other).
MAX_RECEIVED_LOG = 16 << 20


class Coordinator:
    def __init__(self, config: Config, app: Celery) -> None:
        self.config = config
        self.app = app
        self._local = threading.local()

    @property
    def state(self) -> State:
        """One SQLite connection per thread: the task thread and the sweeper."""
        state: State | None = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = State(self.config.database, RetryPolicy.of(self.config))
        return state

    # -- requests from clients ---------------------------------------------------------

    def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        """Read the request's matrix, record, then enqueue. Nothing is recorded unless the
        request is good."""
        try:
            run, specs = self._jobs_of_request(request)
        except KboError as e:
            return {"error": str(e), "exit_status": e.exit_status}
        to_publish = self.state.record_run(run, specs)
        self.publish(to_publish)
        summary = self.state.run(run.id)
        assert summary is not None
        log.info("run %s: %d jobs, %d enqueued", run.id, len(specs), len(to_publish))
        return summary.to_json()

    def _jobs_of_request(self, request: dict[str, Any]) -> tuple[Run, list[JobSpec]]:
        source = request.get("source") or self.config.repository
        if not source:
            raise KboError("no SOURCE given and no repository configured")
        recipe = request.get("recipe") or self.config.default_recipe
        # Loading checks the recipe: a bad one is refused here, before anything is fetched
        # or recorded, instead of failing every job on the workers.
        scope = recipes.load(recipe, self.config.recipe_dirs).scope
        repo = repository.local_repository(source, self.config)
        rev = request.get("rev") or self.config.branch
        commit = repository.resolve(repo, rev)
        sid = repository.source_id(source)
        version, matrix = Matrices(repo, sid, self.state).at(commit)
        selection = Selection(
            *(tuple(request.get(k) or ()) for k in ("arches", "featuresets", "flavours"))
        )
        jobs = select(Matrix(matrix), selection)
        if scope == "arch":
            jobs = representatives(jobs)
        run = Run(
            id=request["id"],
            submitter=request.get("submitter", "unknown"),
            reason=request.get("reason", ""),
            source=sid,
            rev=rev,
            commit=commit,
            recipe=recipe,
            version=version,
        )
        specs = [
            JobSpec(sid, commit, recipe, j.arch, j.featureset, j.flavour, j.kernel_arch)
            for j in jobs
        ]
        return run, specs

    def run_summary(self, run_id: str) -> dict[str, Any] | None:
        summary = self.state.run(run_id)
        return None if summary is None else summary.to_json()

    def snapshot(self, request: dict[str, Any]) -> dict[str, Any]:
        """Fetch, find HEAD, and queue what every tracked arch needs to be OK at HEAD.

        The coordinator handles one request at a time, so two snapshots never plan at
        once; job keys make a repeated snapshot queue nothing twice either way.
        """
        try:
            return self._snapshot(request)
        except KboError as e:
            return {"error": str(e), "exit_status": e.exit_status}

    def _snapshot(self, request: dict[str, Any]) -> dict[str, Any]:
        config, now = self.config, time.time()
        recipe = request.get("recipe") or config.default_recipe
        recipes.load(recipe, config.recipe_dirs)  # a bad recipe is refused before any record
        found, chosen, reply = snapshot_plan.plan_at_head(
            config, self.state, recipe, request.get("max_jobs"), now
        )
        sid = repository.source_id(config.repository)
        by_key = {j.key: j for jobs in found.jobs_at_head.values() for j in jobs}
        if request.get("dry_run"):
            return reply
        if chosen.jobs:
            run = Run(
                id=request.get("id") or str(uuid.uuid4()),
                submitter=request.get("submitter", "unknown"),
                reason=request.get("reason", "snapshot"),
                source=sid,
                rev=config.branch,
                commit=found.head,
                recipe=recipe,
                version=found.version,
            )
            specs = [
                JobSpec(sid, found.head, recipe, j.arch, j.featureset, j.flavour, j.kernel_arch)
                for j in (by_key[key] for key in chosen.jobs)
            ]
            older = {c.sha for c in found.history[1:]}  # queued there: superseded
            self.publish(self.state.record_run(run, specs, supersede=older))
            summary = self.state.run(run.id)
            reply["run"] = None if summary is None else summary.to_json()
            log.info("snapshot %s at %s: %d jobs", run.id, found.head[:12], len(specs))
        if digest.due(config, self.state, now):
            mail = digest.compose(config, found, now)
            if mail is not None:
                digest.queue(config, self.state, *mail, now)
        self.write_status_page(fetch=False)
        return reply

    # -- reports from workers ----------------------------------------------------------

    def claim(self, attempt_id: int, token: str, worker: str, host: str) -> dict[str, Any]:
        verdict = self.state.claim(attempt_id, token, worker, host, self.config.lease_seconds)
        if not verdict.accepted:
            log.warning("claim of attempt %s by %s refused: %s", attempt_id, worker, verdict.reason)
        elif verdict.job is not None:
            log.info(
                "%s try %s (attempt %s): claimed by %s",
                verdict.job.key,
                verdict.attempt_number,
                attempt_id,
                worker,
            )
        job = None
        if verdict.job is not None:
            job = verdict.job.to_json() | {"attempt": verdict.attempt_number}
        return {
            "accepted": verdict.accepted,
            "reason": verdict.reason,
            "job": job,
            "lease_seconds": self.config.lease_seconds,
        }

    def heartbeat(self, attempt_id: int, token: str, stage: str | None = None) -> bool:
        if stage is not None and (
            not isinstance(stage, str) or len(stage) > 200 or not stage.isprintable()
        ):
            stage = None  # a garbled stage (escape codes for a terminal?) is not recorded
        return self.state.renew_lease(attempt_id, token, self.config.lease_seconds, stage)

    def finished(self, attempt_id: int, token: str, result: dict[str, Any]) -> dict[str, Any]:
        """Record a worker's report. A path it names is never kept nor read (the
        coordinator would mail any file it names): only the log's bytes, kept here."""
        if not isinstance(result, dict):
            result = {}
        result.pop("log_path", None)
        log_gz = result.pop("log_gz", None)
        job = self.state.job_of_attempt(attempt_id)
        received = None
        if log_gz is not None and job is not None:
            received = self._receive_log(job.key, attempt_id, log_gz)
        if received is not None:
            result["log_path"] = str(received[1])
        verdict = self.state.finish(attempt_id, token, result)
        if received is not None:  # a refused report overwrites no log
            if verdict.accepted:
                received[0].replace(received[1])
            else:
                received[0].unlink()
        if not verdict.accepted:
            log.warning("report from attempt %s refused: %s", attempt_id, verdict.reason)
        elif verdict.reason != "already recorded":
            attempt = self.state.attempt(attempt_id)
            log.info(
                "%s try %s (attempt %s): %s",
                job.key if job else "?",
                attempt.number if attempt else "?",
                attempt_id,
                result.get("outcome"),
            )
            Reporter(self.config, self.state).on_result(attempt_id)
            self.write_status_page(fetch=False)
        return {"accepted": verdict.accepted, "reason": verdict.reason}

    def write_status_page(self, *, fetch: bool) -> None:
        """Rewrite the configured status page; a failure is logged, never raised."""
        if not self.config.status_page:
            return
        try:
            found = standings.compute(
                self.config, self.config.default_recipe, self.state, fetch=fetch
            )
            status_page.write_page(
                Path(self.config.status_page),
                self.config,
                found.recipe,
                found.head,
                found.arches,
                time.time(),
            )
        except Exception:  # the page must never cost a report
            log.exception("writing the status page %s failed", self.config.status_page)

    def _receive_log(self, key: str, attempt_id: int, log_gz: object) -> tuple[Path, Path] | None:
        """The worker's compressed log written to a temporary file in the coordinator's
        state directory, and where it goes once the report is accepted; None (with a
        warning) for anything that is not a log of at most ``MAX_RECEIVED_LOG`` bytes."""
        if not isinstance(log_gz, str) or len(log_gz) > MAX_RECEIVED_LOG * 4 // 3 + 4:
            log.warning("report from attempt %s: its log is not text or too large", attempt_id)
            return None
        try:
            data = base64.b64decode(log_gz, validate=True)
        except binascii.Error:
            log.warning("report from attempt %s: its log is not base64", attempt_id)
            return None
        path = self.config.state_path / "logs" / key / f"{attempt_id}.log.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        return tmp, path

    # -- enqueueing and the lease sweep ------------------------------------------------

    def publish(self, attempt_ids: list[int]) -> None:
        """Send each attempt to its arch's queue, once: it is marked published before it
        is sent, so the sweep (in its own thread) never sends it too. What could not be
        sent is unmarked, for the next sweep."""
        taken = self.state.take_for_publishing(attempt_ids, self.config.visibility_timeout)
        for i, attempt_id in enumerate(taken):
            job = self.state.job_of_attempt(attempt_id)
            assert job is not None  # attempts are never deleted
            try:
                messaging.publish_build(self.app, attempt_id, job.arch)
            except BaseException:
                self.state.release_publishing(taken[i:])
                raise

    def sweep(self) -> None:
        """Re-enqueue jobs whose worker stopped renewing its lease, and lost messages;
        publish the retries of infra-errors and dep-waits that are due."""
        self.publish(self.state.expire_leases(self.config.max_attempts))
        self.publish(self.state.unpublished(republish_after=self.config.visibility_timeout))

    def mail_forever(self, stop: threading.Event) -> None:
        """Send due reports from the outbox; what fails waits for its next try."""
        while not stop.is_set():
            try:
                Mailer(self.config, self.state).flush()
            except Exception:  # retried at the next tick
                log.exception("sending mail failed")
            stop.wait(1.0)

    def sweep_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.sweep()
            except Exception:  # a sweep that fails is retried at the next tick
                log.exception("lease sweep failed")
            stop.wait(self.config.sweep_seconds)


def register(app: Celery, coordinator: Coordinator) -> None:
    """Bind the coordinator's Celery tasks; each is idempotent under re-delivery."""

    @app.task(name="kbo.submit", acks_late=True)
    def submit(request: dict[str, Any]) -> dict[str, Any]:
        """Package and record a run keyed by the request id: re-delivery records nothing new."""
        return coordinator.submit(request)

    @app.task(name="kbo.snapshot", acks_late=True)
    def snapshot_task(request: dict[str, Any]) -> dict[str, Any]:
        """Queue what every tracked arch needs at HEAD; from `kbo snapshot` or the beat."""
        return coordinator.snapshot(request)

    @app.task(name="kbo.run_summary")
    def run_summary(run_id: str) -> dict[str, Any] | None:
        """Read-only: a run and every job in it."""
        return coordinator.run_summary(run_id)

    @app.task(name="kbo.claim", acks_late=True)
    def claim(attempt_id: int, token: str, worker: str, host: str) -> dict[str, Any]:
        """Hand a queued attempt to one delivery; refuse every other claim."""
        return coordinator.claim(attempt_id, token, worker, host)

    @app.task(name="kbo.heartbeat", ignore_result=True)
    def heartbeat(attempt_id: int, token: str, stage: str | None = None) -> bool:
        """Renew the lease of a running attempt held by this token, and note its stage;
        else do nothing."""
        return coordinator.heartbeat(attempt_id, token, stage)

    @app.task(name="kbo.finished", acks_late=True, ignore_result=True)
    def finished(attempt_id: int, token: str, result: dict[str, Any]) -> dict[str, Any]:
        """Record an outcome once; a repeat is a no-op, a late or foreign report is refused."""
        return coordinator.finished(attempt_id, token, result)

    _ = (submit, snapshot_task, run_summary, claim, heartbeat, finished)


def start_sweeper(coordinator: Coordinator) -> threading.Event:
    """The lease sweep and the mail sender, each in a thread with its own connection."""
    stop = threading.Event()
    threading.Thread(
        target=coordinator.mail_forever, args=(stop,), daemon=True, name="kbo-mail"
    ).start()
    threading.Thread(
        target=coordinator.sweep_forever, args=(stop,), daemon=True, name="kbo-lease-sweep"
    ).start()
    time.sleep(0)
    return stop
