"""The coordinator: the only writer of kbo's state.

It plans submissions, records runs and jobs, hands attempts to workers that claim
them, records their reports, and sweeps lapsed leases. Every Celery task here is
idempotent: re-delivery or a repeated report changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from celery import Celery

from kbo import messaging, recipes
from kbo.config import Config
from kbo.errors import EXIT_BAD_INPUT, KboError
from kbo.orchestrator import snapshot_plan, standings, status_page, timeouts
from kbo.orchestrator.bisections import Bisector
from kbo.orchestrator.heartbeats import hear_forever
from kbo.orchestrator.listening import Listening, boot_clock
from kbo.orchestrator.mail import digest
from kbo.orchestrator.mail.outbox import Mailer
from kbo.orchestrator.mail.reports import Reporter
from kbo.orchestrator.matrices import Matrices
from kbo.orchestrator.retries import RetryPolicy
from kbo.orchestrator.state import Job, JobSpec, Run, State, WorkerInfo
from kbo.packaging import repository
from kbo.packaging.matrix import Matrix, Selection, representatives, select

log = logging.getLogger("kbo.coordinator")
# The runs of one ladder snapshot get ids derived from its request's, rung by rung.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://kbo/ladder-runs")

# The largest compressed log a report may carry: a worker sends at most 16 MiB
# (workers/build.py MAX_SHIPPED_LOG; the two sides never import each other).
MAX_RECEIVED_LOG = 16 << 20
# The builds `kbo bisect` may take when bisect_max_steps is 0 (no automatic bisection).
DEFAULT_BISECT_STEPS = 8


class Coordinator:
    def __init__(self, config: Config, app: Celery) -> None:
        self.config = config
        self.app = app
        self._local = threading.local()
        self.listening = Listening()

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

    def cancel(self, request: dict[str, Any]) -> dict[str, Any]:
        """``kbo cancel``: one job (``job``: its id) or every job of a run (``run``)."""
        by = str(request.get("by") or "unknown")
        job_id, run_id = request.get("job"), request.get("run")
        if isinstance(job_id, int) and not isinstance(job_id, bool):
            if self.state.job(job_id) is None:
                return {"error": f"no job {job_id}", "exit_status": EXIT_BAD_INPUT}
            ids = [job_id]
        elif isinstance(run_id, str):
            found = self.state.jobs_of_run(run_id)
            if found is None:
                return {"error": f"no run {run_id}", "exit_status": EXIT_BAD_INPUT}
            ids = found
        else:
            return {"error": "a cancel names a job id or a run id", "exit_status": EXIT_BAD_INPUT}
        done = self.state.cancel(ids, by)
        for job, was in done.cancelled:
            log.info("%s (job %s): cancelled by %s, was %s", job.key, job.id, by, was)
        return {
            "cancelled": [job.to_json() | {"was": was} for job, was in done.cancelled],
            "left": [job.to_json() for job in done.left],
        }

    def retry(self, request: dict[str, Any]) -> dict[str, Any]:
        """``kbo retry``: a give-back, a new attempt now for a job that ended."""
        job_id, request_id = request.get("job"), request.get("id")
        if not isinstance(job_id, int) or isinstance(job_id, bool) or not request_id:
            return {"error": "a retry names a job id", "exit_status": EXIT_BAD_INPUT}
        by = str(request.get("by") or "unknown")
        given = self.state.give_back(job_id, by, str(request_id))
        if given.attempt_id is None:
            return {"error": given.reason, "exit_status": EXIT_BAD_INPUT}
        if given.reason != "already recorded":
            self.publish([given.attempt_id])
            assert given.job is not None
            log.info("%s (job %s): retried by %s", given.job.key, job_id, by)
        attempt = self.state.attempt(given.attempt_id)
        job = self.state.job(job_id)
        assert attempt is not None and job is not None
        return job.to_json() | {"attempt": attempt.number, "retried_by": attempt.retried_by}

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
        """Plan at HEAD, then record and publish a run per recipe that queues jobs: one
        recipe, or each rung of the ladder that some arch stands on."""
        config, now = self.config, time.time()
        climbing = not request.get("recipe") and bool(config.ladder)
        if climbing:
            for name in config.ladder:  # a bad recipe is refused before any record
                recipes.load(name, config.recipe_dirs)
            fetch = bool(request.get("fetch", True))
            rungs, reply = snapshot_plan.plan_ladder(
                config, self.state, request.get("max_jobs"), now, fetch=fetch
            )
        else:
            recipe = request.get("recipe") or config.default_recipe
            recipes.load(recipe, config.recipe_dirs)
            found, chosen, reply = snapshot_plan.plan_at_head(
                config, self.state, recipe, request.get("max_jobs"), now
            )
            rungs = [snapshot_plan.Rung(recipe, found, chosen)]
        if request.get("dry_run"):
            return reply
        request_id = request.get("id") or str(uuid.uuid4())
        runs = []
        for rung in rungs:
            if rung.chosen.jobs:
                # One id per rung, the same for a request delivered again.
                run_id = (
                    request_id
                    if len(rungs) == 1
                    else str(uuid.uuid5(NAMESPACE, f"{request_id}/{rung.recipe}"))
                )
                runs.append(self._record_snapshot_run(request, run_id, rung))
        reply["run"] = runs[0] if runs else None
        if climbing:  # a ladder, even of one rung: the client follows it by "runs"
            reply["runs"] = runs
            sid, head = repository.source_id(config.repository), rungs[0].found.head
            reply["in_flight"] = self.state.runs_in_flight(sid, head, config.ladder)
        found = rungs[-1].found
        if digest.due(config, self.state, now):
            mail = digest.compose(config, found, now)
            if mail is not None:
                digest.queue(config, self.state, *mail, now)
        self.write_status_page(fetch=False)
        return reply

    def _record_snapshot_run(
        self, request: dict[str, Any], run_id: str, rung: snapshot_plan.Rung
    ) -> dict[str, Any] | None:
        found, sid = rung.found, repository.source_id(self.config.repository)
        by_key = {j.key: j for jobs in found.jobs_at_head.values() for j in jobs}
        run = Run(
            id=run_id,
            submitter=request.get("submitter", "unknown"),
            reason=request.get("reason", "snapshot"),
            source=sid,
            rev=self.config.branch,
            commit=found.head,
            recipe=rung.recipe,
            version=found.version,
        )
        specs = [
            JobSpec(sid, found.head, rung.recipe, j.arch, j.featureset, j.flavour, j.kernel_arch)
            for j in (by_key[key] for key in rung.chosen.jobs)
        ]
        older = {c.sha for c in found.history[1:]}  # queued there: superseded
        self.publish(self.state.record_run(run, specs, supersede=older))
        summary = self.state.run(run.id)
        log.info(
            "snapshot %s at %s: %d jobs of %s", run.id, found.head[:12], len(specs), rung.recipe
        )
        return None if summary is None else summary.to_json()

    # -- reports from workers ----------------------------------------------------------

    def claim(self, attempt_id: int, token: str, worker: str, host: str) -> dict[str, Any]:
        if not all(isinstance(v, str) and NAME.fullmatch(v) for v in (worker, host)):
            # Checked as an announcement's are: the host names the admins' mail subject.
            log.warning("claim of attempt %s with a malformed worker or host refused", attempt_id)
            reason, lease = "malformed worker or host", self.config.lease_seconds
            return {"accepted": False, "reason": reason, "job": None, "lease_seconds": lease}
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
        job, limits = None, {}
        if verdict.job is not None:
            job = verdict.job.to_json() | {"attempt": verdict.attempt_number}
            limits = self._timeouts(verdict.job)
        return {
            "accepted": verdict.accepted,
            "reason": verdict.reason,
            "job": job,
            "lease_seconds": self.config.lease_seconds,
            "timeouts": limits,
        }

    def _timeouts(self, job: Job) -> dict[str, dict[str, int | str]]:
        """Per executor, the timeout the job key's earlier builds set (none: the
        recipe's); a recipe that cannot be read sets none (the worker says why)."""
        config = self.config
        if config.timeout_history == 0:
            return {}
        try:
            recipe = recipes.load(job.recipe, config.recipe_dirs)
        except KboError:
            return {}
        durations = self.state.build_durations(job, config.timeout_history * len(recipes.EXECUTORS))
        return timeouts.from_history(
            durations,
            config.timeout_history,
            config.timeout_min_seconds,
            lambda executor: recipe.limits(executor)[0],
        )

    def heartbeat(self, attempt_id: int, token: str, stage: str | None = None) -> str:
        """Renew the lease; say whether it is "held", "lost" (the attempt lapsed and its job
        was queued again: its worker stops building) or "ended" (its report is in)."""
        if stage is not None and (
            not isinstance(stage, str) or len(stage) > 200 or not stage.isprintable()
        ):
            stage = None  # a garbled stage (escape codes for a terminal?) is not recorded
        held = self.state.renew_lease(attempt_id, token, self.config.lease_seconds, stage)
        self.state.worker_seen(attempt_id, token)
        return held

    def worker_announce(self, announce: dict[str, Any]) -> None:
        """A worker says who it is and what it serves: at start, and while it lives.
        Every field is checked as input; a malformed announcement is dropped."""
        info = worker_info(announce)
        if info is None:
            log.warning("a malformed worker announcement dropped: %.200r", announce)
            return
        self.state.worker_announced(info)

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
            mail_id = Reporter(self.config, self.state).on_result(attempt_id)
            self._bisect(attempt_id, mail_id)
            self._climb(job)
            self.write_status_page(fetch=False)
        return {"accepted": verdict.accepted, "reason": verdict.reason}

    def _climb(self, job: Job | None) -> None:
        """A ladder rung's job succeeded: plan the ladder again at HEAD (without a fetch),
        which queues the next rung of each arch whose whole rung has now passed. The
        report is already recorded: a failure here is logged, never raised."""
        ladder = self.config.ladder
        current = None if job is None or not ladder else self.state.job(job.id)
        if current is None or current.state != "succeeded" or current.recipe not in ladder[:-1]:
            return
        try:
            reply = self._snapshot({"reason": "ladder", "submitter": "kbo", "fetch": False})
        except Exception:
            log.exception("climbing the ladder after %s failed", current.key)
            return
        for run in reply.get("runs", []):
            log.info(
                "ladder: %s queued %d jobs of %s", current.key, len(run["jobs"]), run["recipe"]
            )

    def _bisect(self, attempt_id: int, mail_id: int | None) -> None:
        """Advance the bisections this result is a step of; bisect a new failure. A
        bisection that fails is logged: it must never cost a report."""
        job, attempt = self.state.job_of_attempt(attempt_id), self.state.attempt(attempt_id)
        if job is None or attempt is None or job.current_attempt != attempt_id:
            return
        try:
            bisector = Bisector(self.config, self.state, self.publish)
            bisector.on_result(job)
            bisector.on_failure(job, attempt, mail_id)
        except Exception:
            log.exception("%s at %s: bisecting failed", job.key, job.commit[:12])

    def resume_bisections(self) -> None:
        """Advance each running bisection once, at start: a coordinator that died between
        a step's result and the next step (or the verdict) left it waiting for nothing.
        Advancing is idempotent, so one that waits for a build changes nothing."""
        bisector = Bisector(self.config, self.state, self.publish)
        for bisection in self.state.bisections(running_only=True):
            try:
                bisector.advance(bisection)
            except Exception:
                log.exception("resuming bisection %s failed", bisection.id)

    def bisect(self, request: dict[str, Any]) -> dict[str, Any]:
        """``kbo bisect``: bisect what broke a failed job, or say how its bisection
        stands. Asking again starts nothing new."""
        job_id, steps = request.get("job"), request.get("max_steps")
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            return {"error": "a bisection names a job id", "exit_status": EXIT_BAD_INPUT}
        if steps is None:
            steps = self.config.bisect_max_steps or DEFAULT_BISECT_STEPS
        if not isinstance(steps, int) or isinstance(steps, bool) or not 0 < steps <= 64:
            return {"error": "max_steps is a number from 1 to 64", "exit_status": EXIT_BAD_INPUT}
        job = self.state.job(job_id)
        if job is None:
            return {"error": f"no job {job_id}", "exit_status": EXIT_BAD_INPUT}
        if job.state != "failed":
            return {
                "error": f"job {job_id} is {job.state}: only a failed job is bisected",
                "exit_status": EXIT_BAD_INPUT,
            }
        attempt = self.state.attempt(job.current_attempt or 0)
        if attempt is None:
            return {"error": f"job {job_id} has no attempt", "exit_status": EXIT_BAD_INPUT}
        by = str(request.get("by") or "unknown")
        try:
            started = Bisector(self.config, self.state, self.publish).start(job, attempt, by, steps)
        except KboError as e:
            return {"error": str(e), "exit_status": e.exit_status}
        if started.bisection is None:
            return {
                "error": f"job {job_id} {job.key}: nothing to bisect: {started.reason}",
                "exit_status": EXIT_BAD_INPUT,
            }
        return started.bisection.to_json() | {"started": started.made}

    def write_status_page(self, *, fetch: bool) -> None:
        """Rewrite the configured status page; a failure is logged, never raised."""
        if not self.config.status_page:
            return
        try:
            found = standings.compute(
                self.config, self.config.status_recipe, self.state, fetch=fetch
            )
            status_page.write_page(
                Path(self.config.status_page),
                self.config,
                found.recipe,
                found.head,
                found.arches,
                time.time(),
                found.unserved,
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
        publish the retries of infra-errors and dep-waits that are due. Leases lapse only
        when ``Listening.may_lapse_leases`` says so."""
        if self.listening.may_lapse_leases(self.config.lease_seconds):
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
        """Sweep every ``sweep_seconds``. A tick that comes much later than due (the process
        was paused, the host suspended, the last sweep stalled) restarts the listening
        clock first, before anything can lapse."""
        last = boot_clock()
        while not stop.is_set():
            now = boot_clock()
            if now - last > 2 * self.config.sweep_seconds:
                self.listening.interrupted(now - last)
            last = now
            try:
                self.sweep()
            except Exception:  # a sweep that fails is retried at the next tick
                log.exception("lease sweep failed")
            stop.wait(self.config.sweep_seconds)


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._+-]{0,199}")
ARCH = re.compile(r"[a-z0-9][a-z0-9.+-]{0,39}")


def worker_info(announce: object) -> WorkerInfo | None:
    """A worker's announcement as a record, or None unless every field is what kbo sends."""
    if not isinstance(announce, dict):
        return None
    name, host, version = (announce.get(k) for k in ("name", "host", "version"))
    arches, executors = announce.get("arches"), announce.get("executors")
    slots, started = announce.get("slots"), announce.get("started_at")
    if not all(isinstance(v, str) and NAME.fullmatch(v) for v in (name, host, version)):
        return None
    if not isinstance(arches, list) or not all(
        isinstance(a, str) and ARCH.fullmatch(a) for a in arches
    ):
        return None
    if not isinstance(executors, dict) or not all(
        k in arches and isinstance(v, list) and all(e in recipes.EXECUTORS for e in v)
        for k, v in executors.items()
    ):
        return None
    if not isinstance(slots, int) or isinstance(slots, bool) or not 0 < slots <= 64:
        return None
    if not isinstance(started, int | float) or isinstance(started, bool):
        return None
    assert isinstance(name, str) and isinstance(host, str) and isinstance(version, str)
    return WorkerInfo(name, host, arches, executors, slots, version, float(started), 0.0)


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

    @app.task(name="kbo.cancel", acks_late=True)
    def cancel(request: dict[str, Any]) -> dict[str, Any]:
        """Cancel a job or a run's jobs that are queued or running; again, nothing more."""
        return coordinator.cancel(request)

    @app.task(name="kbo.retry", acks_late=True)
    def retry(request: dict[str, Any]) -> dict[str, Any]:
        """A new attempt for a job that ended, once per request id (re-delivery is harmless)."""
        return coordinator.retry(request)

    @app.task(name="kbo.bisect", acks_late=True)
    def bisect(request: dict[str, Any]) -> dict[str, Any]:
        """Bisect a failed job; a job key and bad commit are bisected once, so asking
        again (or re-delivery) answers with the same bisection."""
        return coordinator.bisect(request)

    @app.task(name="kbo.run_summary")
    def run_summary(run_id: str) -> dict[str, Any] | None:
        """Read-only: a run and every job in it."""
        return coordinator.run_summary(run_id)

    @app.task(name="kbo.claim", acks_late=True)
    def claim(attempt_id: int, token: str, worker: str, host: str) -> dict[str, Any]:
        """Hand a queued attempt to one delivery; refuse every other claim."""
        return coordinator.claim(attempt_id, token, worker, host)

    @app.task(name="kbo.heartbeat")
    def heartbeat(attempt_id: int, token: str, stage: str | None = None) -> str:
        """Renew the lease of a running attempt held by this token, and note its stage;
        answer whether the lease is still held. Idempotent. Workers send heartbeats to
        their own queue (``orchestrator/heartbeats.py``); this serves older ones."""
        return coordinator.heartbeat(attempt_id, token, stage)

    @app.task(name="kbo.finished", acks_late=True)
    def finished(attempt_id: int, token: str, result: dict[str, Any]) -> dict[str, Any]:
        """Record an outcome once; a repeat is a no-op (so a worker may send it again), a
        late or foreign report is refused. The worker keeps its lease until this answers."""
        return coordinator.finished(attempt_id, token, result)

    _ = (
        submit,
        snapshot_task,
        cancel,
        retry,
        bisect,
        run_summary,
        claim,
        heartbeat,
        finished,
    )


def start_sweeper(coordinator: Coordinator) -> threading.Event:
    """The heartbeats' consumer, the lease sweep and the mail sender, each in a thread
    with its own connection."""
    stop = threading.Event()
    threading.Thread(
        target=hear_forever, args=(coordinator, stop), daemon=True, name="kbo-heartbeats"
    ).start()
    threading.Thread(
        target=coordinator.mail_forever, args=(stop,), daemon=True, name="kbo-mail"
    ).start()
    threading.Thread(
        target=coordinator.sweep_forever, args=(stop,), daemon=True, name="kbo-lease-sweep"
    ).start()
    time.sleep(0)
    return stop
