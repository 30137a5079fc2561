"""The build task: claim the attempt, keep its lease, run the recipe, report once.

The message carries only the attempt id. The coordinator's answer to the claim says
what to build; a claim it refuses (a re-delivered or superseded attempt) ends the task
with nothing built.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from celery import Celery

import arches
import recipes
from orchestrator import messaging
from orchestrator.config import Config
from orchestrator.errors import KboError
from workers import runner
from workers.first_error import first_error

log = logging.getLogger("kbo.worker")

# Filled by `kbo worker` before the pool forks: the executors this host has per arch.
EXECUTORS_BY_ARCH: dict[str, tuple[str, ...]] = {}
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


class BuildAttempt:
    def __init__(self, app: Celery, config: Config, attempt_id: int, token: str, worker: str):
        self.app, self.config = app, config
        self.attempt_id, self.token, self.worker = attempt_id, token, worker

    def run(self) -> None:
        claim = messaging.call(
            self.app, "kbo.claim", self.attempt_id, self.token, self.worker, socket.gethostname()
        )
        if not claim["accepted"]:
            log.warning(
                "attempt %s refused by the coordinator: %s", self.attempt_id, claim["reason"]
            )
            return
        job = claim["job"]
        stop = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(stop, claim["lease_seconds"] / 3), daemon=True
        )
        heartbeat.start()
        try:
            result = self._execute(job)
        finally:
            stop.set()
            heartbeat.join()
        messaging.send(self.app, "kbo.finished", self.attempt_id, self.token, result)
        log.info("%s attempt %s: %s", _name(job), self.attempt_id, result["outcome"])

    def _heartbeat(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            try:
                messaging.send(self.app, "kbo.heartbeat", self.attempt_id, self.token, retry=False)
            except Exception as e:  # the broker may be restarting; the next beat retries
                log.warning("heartbeat for attempt %s not sent: %s", self.attempt_id, e)

    def _execute(self, job: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        log_path = self.config.state_path / "logs" / _name(job) / f"{self.attempt_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = {
            "outcome": "failed",
            "executor": None,
            "log_path": str(log_path),
            "artifacts": [],
            "first_error": None,
        }
        with log_path.open("wb") as out:
            try:
                recipe = recipes.load(job["recipe"], self.config.recipe_dirs)
                executor = self._executor(job["arch"], recipe)
                result["executor"] = executor
                result["first_error"] = self._steps(job, recipe, out)
            except KboError as e:
                out.write(f"kbo: {e}\n".encode())
                result["first_error"] = str(e)
        if result["first_error"] is None:
            result["outcome"] = "succeeded"
        result["duration"] = round(time.monotonic() - started, 3)
        return result

    def _executor(self, arch: str, recipe: recipes.Recipe) -> str:
        available = EXECUTORS_BY_ARCH.get(arch, ())
        usable = [e for e in available if e in recipe.executors]
        if not usable:
            raise KboError(
                f"worker {self.worker} cannot build {arch} with recipe {recipe.name} "
                f"(host has {', '.join(available) or 'nothing'}; recipe wants "
                f"{', '.join(recipe.executors)})"
            )
        return usable[0]

    def _steps(self, job: dict[str, Any], recipe: recipes.Recipe, out: Any) -> str | None:
        """Run every step; return the first error, or None when all succeeded."""
        values = {
            "arch": job["arch"],
            "featureset": job["featureset"],
            "flavour": job["flavour"],
            "kernel_arch": job.get("kernel_arch") or "",
            "commit": job["commit_sha"],
            "cross_prefix": arches.load(job["arch"]).cross_prefix,
            "key": _name(job),
        }
        builds = self.config.state_path / "builds"
        builds.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"{_name(job)}-", dir=builds))
        env = {"PATH": SAFE_PATH, "HOME": str(workdir), "LANG": "C.UTF-8", "TMPDIR": str(workdir)}
        env |= {f"KBO_{k.upper()}": v for k, v in values.items()}
        try:
            for step in recipe.steps:
                out.write(f"\n== kbo step {step.name} ==\n".encode())
                ran = runner.run(
                    recipe.argv(step, values),
                    log=out,
                    cwd=workdir,
                    env=env,
                    timeout=recipe.timeout,
                    no_output_timeout=recipe.no_output_timeout,
                )
                if not ran.ok:
                    out.flush()
                    found = first_error(_read_lines(out.name))
                    return found or f"step {step.name} {ran.describe()}"
            return None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _name(job: dict[str, Any]) -> str:
    return f"{job['arch']}_{job['featureset']}_{job['flavour']}"


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readlines()
