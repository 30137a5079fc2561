"""The build task: claim the attempt, keep its lease, build, check, report once.

The message carries only the attempt id. The coordinator's answer to the claim says
what to build; a claim it refuses (a re-delivered or superseded attempt) ends the task
with nothing built. Building runs in fixed, logged stages: prepare the source, set up
the executor, run the recipe's steps in the sandbox, collect and check the artifacts,
smoke-test cross builds under qemu, clean up.
"""

from __future__ import annotations

import base64
import gzip
import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from celery import Celery

from kbo import arches, messaging, recipes
from kbo.config import Config
from kbo.errors import InfraError, KboError, UserError
from kbo.packaging import repository
from kbo.packaging.matrix import job_key
from kbo.text import one_line
from kbo.workers import (
    artifacts,
    build_deps,
    job_files,
    prepared_tree,
    runner,
    sandbox,
    smoke,
    worker_paths,
)
from kbo.workers.claim import BadClaim, checked_claim
from kbo.workers.executors import Execution, prepare_execution
from kbo.workers.first_error import first_error_in
from kbo.workers.outcomes import MissingBuildDepends, outcome_of
from kbo.workers.worker_paths import worker_dir

log = logging.getLogger("kbo.worker")

# Filled by `kbo worker` before the pool forks: the executors this host has per arch.
EXECUTORS_BY_ARCH: dict[str, tuple[str, ...]] = {}
# A stage change is reported after this long, unless the build has moved on or ended.
STAGE_SETTLE_SECONDS = 1.0
# The compressed log travels to the coordinator with the report, up to this size;
# beyond it, only the log's last SHIPPED_TAIL bytes (compressed: no larger) do.
MAX_SHIPPED_LOG = 16 << 20
SHIPPED_TAIL = 15 << 20
# A first error that names an unexpected exception is cut to this many characters.
MAX_FAILURE = 400
# While a heartbeat's answer is awaited, it is looked for this often.
ANSWER_POLL_SECONDS = 1.0
# Heartbeats awaiting an answer, at most: through a long coordinator outage the oldest
# are let go (an answer that comes later expires with the other results).
MAX_AWAITED_BEATS = 8
# How long the last beats' answers are waited for once the report is answered: an
# answer not read by then expires with the other results.
DRAIN_SECONDS = 0.5
# Why a build stops before its end: what the coordinator's answer to a heartbeat means.
LEASE_LOST = (
    "the coordinator says the lease is lost (it lapsed and the job was queued again, "
    "or the job was cancelled)"
)


def register(app: Celery, config: Config) -> None:
    @app.task(
        name="kbo.build",
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
    )
    def build(self: Any, attempt_id: int) -> None:
        """Build one attempt. Idempotent: only the delivery the coordinator accepts builds."""
        BuildAttempt(
            app, config, attempt_id, str(self.request.id), str(self.request.hostname)
        ).run()

    _ = build


@dataclass(frozen=True)
class Workspace:
    """Where a job builds. ``root`` is the worker's own; only ``root/build`` (the step's
    /build) is the build's, and the worker reads it only through ``job_files``."""

    root: Path
    log: BinaryIO

    @property
    def build(self) -> Path:
        return self.root / "build"


class BuildAttempt:
    def __init__(self, app: Celery, config: Config, attempt_id: int, token: str, worker: str):
        self.app, self.config = app, config
        self.attempt_id, self.token, self.worker = attempt_id, token, worker
        self.stage = "claimed"
        self._wake = threading.Event()
        self._lost = threading.Event()  # the coordinator said the lease is lost
        self._timeouts: dict[str, tuple[int, str]] = {}  # from the claim: per executor

    def run(self) -> None:
        # A claim the coordinator died holding stays unacknowledged in the broker for the
        # visibility timeout (hours): the claim is asked again after a bounded wait, and
        # answered as the first time by the coordinator that comes back.
        _, reply = messaging.call_until_answered(
            self.app,
            "kbo.claim",
            self.attempt_id,
            self.token,
            self.worker,
            socket.gethostname(),
            first_wait=self.config.reply_seconds,
            max_wait=16 * self.config.reply_seconds,
        )
        try:
            claim = checked_claim(reply)
        except BadClaim as e:
            log.error("attempt %s: nothing built: %s", self.attempt_id, e)
            return
        if claim.job is None:
            log.warning("attempt %s refused by the coordinator: %s", self.attempt_id, claim.reason)
            return
        job = claim.job
        self._timeouts = claim.timeouts
        # The lease is kept until the coordinator has the report, not just to the build's
        # end: a report that waits in the queue (the coordinator is down or paused) must
        # not find its lease lapsed.
        reported = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(reported, claim.lease_seconds / 3), daemon=True
        )
        heartbeat.start()
        try:
            with runner.stopped_by(self._lost, LEASE_LOST):
                result = self._execute(job)
            answer = self._report(result)
        finally:
            reported.set()
            self._wake.set()
            heartbeat.join(DRAIN_SECONDS + 1)  # it ends at once, unless its send waits
        name = f"{_name(job)} try {job.get('attempt')} (attempt {self.attempt_id})"
        if answer is None:
            log.warning("%s: stopped, nothing reported: %s", name, LEASE_LOST)
        elif answer.get("accepted") is not True:
            log.warning("%s: %s, report refused: %s", name, result["outcome"], answer)
        else:
            log.info("%s: %s", name, result["outcome"])

    def _report(self, result: dict[str, Any]) -> dict[str, Any] | None:
        """Send the outcome until the coordinator answers (``kbo.finished`` is idempotent:
        it is sent again after each longer wait); the coordinator's answer, or None when
        the lease is lost and nothing is reported."""
        if self._lost.is_set():
            return None
        self.stage = "report"
        answered, answer = messaging.call_until_answered(
            self.app,
            "kbo.finished",
            self.attempt_id,
            self.token,
            result,
            first_wait=self.config.reply_seconds,
            max_wait=16 * self.config.reply_seconds,
            give_up=self._lost.is_set,
        )
        if not answered:
            return None
        return answer if isinstance(answer, dict) else {"accepted": False, "answer": answer}

    def _heartbeat(self, reported: threading.Event, interval: float) -> None:
        """Renew the lease every ``interval``, and at once when the stage changes, so a
        waiting client sees where the build is, until the report is answered. Read the
        coordinator's answers without waiting for them; when one says the lease is lost,
        stop the build (``runner.stopped_by``) and send nothing more.

        A beat is a question whose answer is read later: the thread never blocks on the
        coordinator, and while the broker is down the send itself waits it out, here and
        not in the build."""
        awaited: list[messaging.Pending] = []
        due = time.monotonic() + interval
        while not reported.is_set():
            timeout = due - time.monotonic()
            if awaited:
                timeout = min(timeout, ANSWER_POLL_SECONDS)
            woken = self._wake.wait(max(0.0, timeout))
            self._wake.clear()
            # A stage began: let quick ones pass unreported (a short job sends no beat at
            # all), then say where the build is.
            if (woken and reported.wait(STAGE_SETTLE_SECONDS)) or reported.is_set():
                break
            awaited = self._read_answers(awaited)
            if self._lost.is_set():
                break
            if woken or time.monotonic() >= due:
                due = time.monotonic() + interval
                try:
                    awaited.append(
                        messaging.heartbeat(self.app, self.attempt_id, self.token, self.stage)
                    )
                except Exception as e:  # what the broker's retries did not cure: next beat
                    log.warning("heartbeat for attempt %s not sent: %s", self.attempt_id, e)
                for old in awaited[:-MAX_AWAITED_BEATS]:
                    old.forget()
                del awaited[:-MAX_AWAITED_BEATS]
        # A beat sent while the report was on its way is answered just after it: read that
        # answer too, so no result is left behind in the broker.
        drained, pause = time.monotonic() + DRAIN_SECONDS, messaging.FIRST_LOOK_SECONDS
        while awaited and not self._lost.is_set() and time.monotonic() < drained:
            time.sleep(pause)
            pause = min(2 * pause, 0.1)
            awaited = self._read_answers(awaited)
        for pending in awaited:
            pending.forget()

    def _read_answers(self, awaited: list[messaging.Pending]) -> list[messaging.Pending]:
        """The beats still unanswered; a "lost" answer stops the build."""
        unanswered = []
        for pending in awaited:
            answered, answer = pending.answer()
            if not answered:
                unanswered.append(pending)
            elif answer == "lost" and not self._lost.is_set():
                log.warning("attempt %s: %s: stopping the build", self.attempt_id, LEASE_LOST)
                self._lost.set()
        return unanswered

    def _stage(self, out: BinaryIO, name: str) -> None:
        """Enter a stage: in the log, and (through a heartbeat now) in kbo's state."""
        out.write(f"\n== kbo stage {name} ==\n".encode())
        out.flush()
        self.stage = name
        self._wake.set()

    def _execute(self, job: dict[str, Any]) -> dict[str, Any]:
        """Build the job; the report, whatever happened. Any exception ends the build
        with a first error that names it and the outcome ``outcome_of`` gives it (the
        commit's fault, the host's, or missing Build-Depends): the coordinator hears of
        it now rather than when the lease lapses. The log goes with the report when it
        can."""
        started = time.monotonic()
        result: dict[str, Any] = {
            "outcome": "failed",
            "executor": None,
            "artifacts": [],
            "first_error": None,
        }
        try:
            log_path = self._logged_build(job, result, started)
        except Exception as e:  # the log could not be opened or written: no log
            log.exception("attempt %s failed outside its build", self.attempt_id)
            result |= {"outcome": outcome_of(e), "first_error": _failure(e)}
            result["duration"] = round(time.monotonic() - started, 3)
            return result
        try:
            result |= _ship_log(log_path)
        except Exception:  # the disk is full, say: the report goes without the log
            log.exception("attempt %s: its log %s is not shipped", self.attempt_id, log_path)
        return result

    def _logged_build(self, job: dict[str, Any], result: dict[str, Any], started: float) -> Path:
        """Build in a job directory, logging to a new log; fill ``result``; the log."""
        logs = worker_dir(self.config) / "logs" / _name(job)
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{self.attempt_id}.log"
        job_dir = worker_paths.job_directory(self.config, f"{_name(job)}-")
        with job_dir as job_root, log_path.open("wb") as out:
            try:
                result["first_error"] = self._build(job, Workspace(job_root, out), result)
            except Exception as e:
                if not isinstance(e, KboError | ValueError | OSError):
                    log.exception("attempt %s: internal error", self.attempt_id)
                result["first_error"] = _failure(e)
                result["outcome"] = outcome_of(e)
                out.write(f"\nkbo: {result['first_error']}\n".encode())
            if result["first_error"] is None:
                result["outcome"] = "succeeded"
            result["duration"] = round(time.monotonic() - started, 3)
            out.write(f"\nkbo: {result['outcome']} in {result['duration']:.0f} s\n".encode())
            self._clean(job_root, result["outcome"])
        return log_path

    def _build(self, job: dict[str, Any], where: Workspace, result: dict[str, Any]) -> str | None:
        """Every stage in order; the first error, or None when the build succeeded."""
        out = where.log
        try:
            recipe = recipes.load(job["recipe"], self.config.recipe_dirs)
            info = arches.load(job["arch"])
        except UserError as e:  # the coordinator has them: this worker's files differ
            raise InfraError(f"this worker cannot load the job's recipe or arch: {e}") from None
        executor = self._executor(job["arch"], recipe)
        result["executor"] = executor
        where.build.mkdir()
        base = self._sandbox(out)
        self._stage(out, "prepare")
        prepared = (
            prepared_tree.prepare(self.config, job["source"], job["commit_sha"], out, base)
            if recipe.needs_source
            else None
        )
        self._stage(out, f"executor {executor}")
        execution = prepare_execution(executor, info, self.config, where.root, out)
        source_env: dict[str, str] = {}
        if prepared is not None:
            control = job_files.read_text(prepared.src, "debian/control")
            self._build_depends(recipe, execution, control, job, out)
            source_env = build_deps.rules_env(control)
        values = self._values(job, recipe, execution)
        spec = self._step_spec(base, job, recipe, execution, prepared, where)
        spec = replace(spec, env=spec.env | source_env)
        failure = self._steps(values, recipe, spec, where, execution.name)
        if failure:
            return failure
        self._stage(out, "check artifacts")
        found = artifacts.collect(
            where.build,
            worker_dir(self.config) / "artifacts" / _name(job) / str(self.attempt_id),
            self.config.job_disk_gb << 30,
        )
        result["artifacts"] = [a.to_json() for a in found]
        expected = [p.format_map(values) for p in recipe.expect_packages]
        if problems := artifacts.problems(found, job["arch"], expected):
            return "; ".join(problems)
        # New files in the source tree land in its overlay's upper directory.
        tree = where.root / "src-upper" if prepared is not None else where.build
        for path in recipe.expect_files:
            if not job_files.is_regular(tree, path.format_map(values)):
                return f"the build did not produce {path.format_map(values)}"
        libc_dev = next((a for a in found if a.package == "linux-libc-dev"), None)
        if execution.name == "cross" and libc_dev is not None and prepared is not None:
            return smoke.check(
                info, libc_dev.name, spec, where.root / "smoke", prepared.upstream, out
            )
        return None

    def _sandbox(self, out: BinaryIO) -> sandbox.Spec:
        """What every step of this job shares: kbo's /etc, a clean environment, limits."""
        config = self.config
        limits = sandbox.Limits(
            memory_bytes=config.job_memory_mb << 20,
            processes=config.job_processes,
            file_bytes=config.job_disk_gb << 30,
        )
        out.write(
            f"kbo: limits: {config.job_memory_mb} MiB of memory per process, "
            f"{config.job_processes} processes for this worker's builds, "
            f"{config.job_disk_gb} GiB of disk under the job directory (rlimits and a disk "
            "watchdog; this host does not delegate cgroup v2 to the worker)\n".encode()
        )
        etc = sandbox.write_etc(worker_dir(config) / "etc")
        return sandbox.Spec(etc=str(etc), env=prepared_tree.build_env(), limits=limits)

    def _build_depends(
        self,
        recipe: recipes.Recipe,
        execution: Execution,
        control: str,
        job: dict[str, Any],
        out: BinaryIO,
    ) -> None:
        """Log unmet Build-Depends; when the recipe needs them all (a full build), raise
        ``MissingBuildDepends``: the job waits for a host that has them (dep-wait)."""
        self._stage(out, "check Build-Depends")
        profiles = debian_env(execution, recipe).get("DEB_BUILD_PROFILES", "").split()
        root = Path(execution.chroot) if execution.chroot else None
        out.write(
            f"kbo: dpkg-checkbuilddeps -B -a {job['arch']} -P {','.join(profiles)}"
            f"{' (in the chroot)' if root else ''}\n".encode()
        )
        checked = build_deps.check(
            control, job["arch"], profiles, root=root, cross=execution.name == "cross"
        )
        if checked.met_natively:
            out.write(
                "kbo: met by the build machine's packages, though the packaging does not say "
                f":native: {', '.join(checked.met_natively)}\n".encode()
            )
        if not checked.missing:
            out.write(b"kbo: every Build-Depends is installed\n")
            return
        out.write(f"kbo: Build-Depends not installed here: {', '.join(checked.missing)}\n".encode())
        if recipe.require_build_depends:
            raise MissingBuildDepends(checked.missing)

    def _executor(self, arch: str, recipe: recipes.Recipe) -> str:
        available = EXECUTORS_BY_ARCH.get(arch, ())
        usable = [e for e in available if e in recipe.executors]
        if not usable:
            raise InfraError(
                f"worker {self.worker} cannot build {arch} with recipe {recipe.name} "
                f"(host has {', '.join(available) or 'nothing'}; recipe wants "
                f"{', '.join(recipe.executors)})"
            )
        return usable[0]

    def _values(
        self, job: dict[str, Any], recipe: recipes.Recipe, execution: Execution
    ) -> recipes.Values:
        """What the recipe's placeholders are filled with: mypy holds this to exactly the
        names ``kbo.recipes`` checks recipes against."""
        return {
            "arch": job["arch"],
            "featureset": job["featureset"],
            "flavour": job["flavour"],
            "kernel_arch": job.get("kernel_arch") or "",
            "commit": job["commit_sha"],
            "cross_prefix": execution.cross_prefix,
            "key": _name(job),
            "jobs": str(os.cpu_count() or 1),
            "cc": ("ccache " if _uses_ccache(recipe, execution) else "")
            + f"{execution.cross_prefix}gcc",
        }

    def _step_spec(
        self,
        base: sandbox.Spec,
        job: dict[str, Any],
        recipe: recipes.Recipe,
        execution: Execution,
        prepared: prepared_tree.Prepared | None,
        where: Workspace,
    ) -> sandbox.Spec:
        """The sandbox of the recipe's steps: /build writable, the prepared source as an
        overlay at /build/src, the compiler cache as the job's trust allows."""
        env = base.env | execution.env | debian_env(execution, recipe)
        overlays: tuple[sandbox.Overlay, ...] = ()
        if prepared is not None:
            parts = [where.root / name for name in ("src-upper", "src-work", "src")]
            for path in parts:
                path.mkdir()
            upper, work, merged = map(str, parts)
            overlays = (sandbox.Overlay(str(prepared.src), upper, work, merged, "/build/src"),)
        binds = [(str(where.build), "/build", True), *((p, p, False) for p in recipe.host_paths)]
        if _uses_ccache(recipe, execution):
            binds += self._ccache(job, env, where)
        return replace(
            base,
            chroot=execution.chroot,
            overlays=overlays,
            binds=tuple(binds),
            network=recipe.network,
            workdir="/build/src" if prepared else "/build",
            env=env,
        )

    def _steps(
        self,
        values: recipes.Values,
        recipe: recipes.Recipe,
        spec: sandbox.Spec,
        where: Workspace,
        executor: str,
    ) -> str | None:
        """Run the recipe's steps in the sandbox; ``values`` fill its placeholders."""
        out = where.log
        spec = replace(spec, env=spec.env | {f"KBO_{k.upper()}": str(v) for k, v in values.items()})
        timeout, quiet = self._limits(recipe, executor, out)
        disk_limit = self.config.job_disk_gb << 30
        for step in recipe.steps:
            self._stage(out, f"step {step.name}")
            ran = runner.run(
                sandbox.wrap(recipe.argv(step, values), spec),
                log=out,
                timeout=timeout,
                no_output_timeout=quiet,
                watch=lambda: job_files.disk_problem(where.root, disk_limit),
            )
            out.write(f"\nkbo: step {step.name} took {ran.duration:.1f} s\n".encode())
            if not ran.ok:
                out.flush()
                if ran.timed_out and ran.timed_out.startswith(("used more than", "wrote more")):
                    return f"step {step.name} {ran.timed_out}"
                found = first_error_in(out.name)
                return found or f"step {step.name} {ran.describe()}"
        return None

    def _limits(self, recipe: recipes.Recipe, executor: str, out: BinaryIO) -> tuple[int, int]:
        """Each step's (total, no-output) timeouts: the recipe's, or less when the job
        key's earlier builds set less (never more); the log says which, and why."""
        timeout, quiet = recipe.limits(executor)
        seconds, why = self._timeouts.get(executor, (timeout, ""))
        if why and seconds < timeout:
            out.write(f"kbo: timeout: {seconds} s per step, from history: {why}\n".encode())
            return seconds, min(quiet, seconds)
        scaled = " (times its emulation_factor)" if executor == "qemu" else ""
        out.write(
            f"kbo: timeout: {timeout} s per step, the recipe's{scaled}: no history of "
            f"{executor} builds of this job key sets less\n".encode()
        )
        return timeout, quiet

    def _ccache(
        self, job: dict[str, Any], env: dict[str, str], where: Workspace
    ) -> list[tuple[str, str, bool]]:
        """The compiler cache. Builds of the tracked branch share it, writable; any other
        commit reads it and writes nothing (``CCACHE_READONLY``), so a submitted commit
        cannot plant objects for later builds. ccache's settings come from the worker's
        own read-only file, so a ``ccache.conf`` planted in the cache does nothing."""
        cache = self.config.cache_path / "ccache"
        cache.mkdir(parents=True, exist_ok=True)
        settings = worker_dir(self.config) / "ccache.conf"
        if not settings.is_file():
            settings.write_text("max_size = 5G\n")
        env |= {
            "CCACHE_CONFIGPATH": "/kbo-ccache.conf",
            "CCACHE_BASEDIR": "/build",
            "CCACHE_DIR": "/ccache",
        }
        writable = trusted(self.config, job)
        if not writable:
            # Its temporary files go to the step's own tmpfs, not the read-only cache.
            env |= {"CCACHE_READONLY": "1", "CCACHE_NOSTATS": "1", "CCACHE_TEMPDIR": "/tmp"}  # noqa: S108
        where.log.write(
            f"kbo: ccache {'shared, writable' if writable else 'read-only'}: this commit is "
            f"{'' if writable else 'not '}on the tracked branch\n".encode()
        )
        return [(str(settings), "/kbo-ccache.conf", False), (str(cache), "/ccache", writable)]

    def _clean(self, job_root: Path, outcome: str) -> None:
        if outcome == "failed" and self.config.keep_failed_builds:
            log.info("keeping the failed build directory %s", job_root)
            (job_root / worker_paths.KEPT).touch()
            return
        try:
            worker_paths.remove_tree(job_root)
        except OSError as e:  # the job's result stands; remove_orphans tries again later
            log.warning("cannot remove the build directory %s: %s", job_root, e)


def debian_env(execution: Execution, recipe: recipes.Recipe) -> dict[str, str]:
    """The build profiles (the executor's and the recipe's) and the build options
    (``parallel=`` one job per CPU) that Debian's rules and the Build-Depends check see."""
    profiles = execution.env.get("DEB_BUILD_PROFILES", "").split() + list(recipe.profiles)
    options = execution.env.get("DEB_BUILD_OPTIONS", "").split()
    options = [o for o in options if not o.startswith("parallel=")]
    options.append(f"parallel={os.cpu_count() or 1}")
    env = {"DEB_BUILD_OPTIONS": " ".join(options)}
    if profiles:  # a native build has none: the variable stays unset
        env["DEB_BUILD_PROFILES"] = " ".join(sorted(set(profiles)))
    return env


def _uses_ccache(recipe: recipes.Recipe, execution: Execution) -> bool:
    """Only where the host's ccache runs: not inside an emulated chroot."""
    return recipe.ccache and execution.name in ("cross", "native") and bool(shutil.which("ccache"))


def trusted(config: Config, job: dict[str, Any]) -> bool:
    """Whether the job is in the trust domain of snapshot builds: the tracked
    repository, at a commit of the tracked branch."""
    if not config.repository or job["source"] != config.repository:
        return False
    try:
        repo = repository.local_repository(
            job["source"], config, fetch=False, mirrors=worker_paths.mirrors(config)
        )
    except KboError:
        return False
    return repository.is_ancestor(repo, job["commit_sha"], config.branch)


def _failure(error: Exception) -> str:
    """The first error of a build that raised ``error``: its message when it is one of
    kbo's own or of the system's, else one line naming what was not expected."""
    if isinstance(error, KboError | ValueError | OSError):
        return one_line(str(error))
    text = one_line(f"internal error: {type(error).__name__}: {error}")
    return text if len(text) <= MAX_FAILURE else text[: MAX_FAILURE - 1] + "…"


def _ship_log(path: Path) -> dict[str, Any]:
    """Compress the log; its bytes go with the report so the coordinator keeps it.

    Never a path: the coordinator reads no file a worker names. A log whose compressed
    form is over ``MAX_SHIPPED_LOG`` travels as its last ``SHIPPED_TAIL`` bytes, behind
    a first line saying so; the worker keeps the whole of it."""
    compressed = path.with_suffix(".log.gz")
    try:
        with path.open("rb") as raw, gzip.open(compressed, "wb") as gz:
            shutil.copyfileobj(raw, gz)
    except BaseException:
        compressed.unlink(missing_ok=True)  # half a log: only taking room
        raise
    if compressed.stat().st_size <= MAX_SHIPPED_LOG:
        data = compressed.read_bytes()
    else:
        data = _compressed_tail(path, compressed)
    path.unlink()
    return {"log_gz": base64.b64encode(data).decode()}


def _compressed_tail(path: Path, compressed: Path) -> bytes:
    """The log's last ``SHIPPED_TAIL`` bytes, compressed, after a line saying it was cut."""
    size = path.stat().st_size
    with path.open("rb") as raw:
        raw.seek(max(0, size - SHIPPED_TAIL))
        tail = raw.read(SHIPPED_TAIL)
    head = (
        f"kbo: log cut: its last {len(tail)} of {size} bytes follow; "
        f"the worker keeps the whole of it in {compressed}\n"
    )
    return gzip.compress(head.encode() + tail)


def _name(job: dict[str, Any]) -> str:
    return job_key(job["arch"], job["featureset"], job["flavour"])
