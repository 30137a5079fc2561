"""Real services for integration tests: redis-server on a free port, kbo processes, a git repo."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from kbo.config import load_config
from kbo.workers.privileges import hand_over
from tests.conftest import KBO, LINUX_61, ROOT, WORKER_USER, copy_debian, git


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class RedisServer:
    """redis-server as kbo's deployment runs it: AOF on, no eviction."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._ping, 20, "redis-server")

    def _ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis fsyncs the AOF and exits
            self.process.wait(20)

    def restart(self) -> None:
        self.stop()
        self.start()

    def queue_length(self, queue: str) -> int:
        return int(self.client().llen(queue))


class Cluster:
    """A packaging repository, a config, and the kbo processes started on it."""

    def __init__(
        self, tmp: Path, broker_url: str = "", repo: Path | None = None, **settings: Any
    ) -> None:
        self.tmp = tmp
        self.control = tmp / "control"
        self.control.mkdir(parents=True)
        if repo is None:
            repo = copy_debian(LINUX_61, tmp / "repo")
            git(repo, "init", "-q", "-b", "main")
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "Import linux 6.1.176-1 packaging")
        self.repo = repo
        recipes = tmp / "recipes"
        recipes.mkdir()
        script = ROOT / "tests/recipes/scripted.sh"
        (recipes / "test-script.toml").write_text(
            'description = "orchestration test stand-in"\ntimeout = 120\nno_output_timeout = 120\n'
            f'host_paths = ["{script.parent}", "{self.control}"]\n'
            '[[step]]\nname = "build"\n'
            f'argv = ["/bin/sh", "{script}", "{self.control}", "{{arch}}"]\n'
        )
        config = (
            {
                "broker_url": broker_url,
                "state_dir": str(tmp / "state"),
                "repository": str(self.repo),
                "branch": "main",
                "default_recipe": "test-script",
                "recipe_dirs": [str(recipes)],
                "lease_seconds": 4,
                "sweep_seconds": 1,
                "reply_seconds": 60,
                "tracked_arches": ["alpha", "hppa", "mips"],
                # The stand-in fails alike at every commit: a bisection would name the
                # oldest suspect. Tests of bisection ask for it (tests/test_bisect.py).
                "bisect_max_steps": 0,
            }
            | settings
            | {"recipe_dirs": [str(recipes), *settings.get("recipe_dirs", [])]}
        )
        self.config = tmp / "kbo.toml"
        self.config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()))
        self.env = os.environ | {"KBO_CONFIG": str(self.config)}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- processes ---------------------------------------------------------------------

    def kbo(self, *args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KBO), *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def start(self, name: str, *args: str, user: str | None = None) -> subprocess.Popen[bytes]:
        """Start ``kbo ARGS``; as ``user`` (through setpriv) when one is named."""
        log = (self.tmp / f"{name}.log").open("ab")
        as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        process = subprocess.Popen(
            [*(as_user if user else []), str(KBO), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def start_coordinator(self) -> None:
        """Start the coordinator (again: its log is appended to) and wait until it is ready."""
        before = len(self.log("coordinator"))
        self.start("coordinator", "coordinator")
        wait_for(lambda: "ready" in self.log("coordinator")[before:], 60, "coordinator ready")

    def start_worker(
        self, name: str, arches: str, *options: str, unprivileged: bool = False
    ) -> None:
        """A worker; ``unprivileged`` starts it as the worker user, not as root (which
        kbo drops from by itself), with its directories handed over first."""
        user = None
        if unprivileged:
            user = WORKER_USER
            hand_over(load_config(str(self.config)), pwd.getpwnam(user))
        argv = ["worker", "--arch", arches, "--name", f"{name}@test", *options]
        self.start(name, *argv, user=user)
        wait_for(lambda: "ready" in self.log(name), 60, f"worker {name} ready")

    def kill(self, name: str) -> None:
        """SIGKILL the process and all its children at once."""
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes.pop(name).wait()

    def pause(self, name: str) -> None:
        """SIGSTOP the process and its children, as a debugger or an overloaded host would."""
        os.killpg(self.processes[name].pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.killpg(self.processes[name].pid, signal.SIGCONT)

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                os.killpg(process.pid, signal.SIGCONT)  # a paused one too
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    # -- the packaging repository ------------------------------------------------------

    def commit(self, message: str, path: str | None = None, text: str | None = None) -> str:
        if path is not None and text is not None:
            (self.repo / path).write_text(text)
            git(self.repo, "commit", "-q", "-am", message)
        else:
            git(self.repo, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    # -- reading the outcome -----------------------------------------------------------

    def submit(self, *args: str, timeout: float = 180) -> dict[str, Any]:
        result = self.kbo("submit", "--json", *args, timeout=timeout)
        assert result.returncode in (0, 1), result.stderr + self.log("coordinator")
        return dict(json.loads(result.stdout))

    def status(self) -> dict[str, dict[str, Any]]:
        result = self.kbo("status", "--json", "--flavours")
        assert result.returncode in (0, 1), result.stderr
        return {arch["name"]: arch for arch in json.loads(result.stdout)["arches"]}

    def query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        db = sqlite3.connect(self.tmp / "state" / "kbo.sqlite")
        db.row_factory = sqlite3.Row
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def attempts(self) -> list[sqlite3.Row]:
        return self.query(
            "SELECT j.arch, j.featureset, j.flavour, j.state AS job_state, a.* FROM attempts a"
            " JOIN jobs j ON j.id = a.job_id ORDER BY j.arch, j.flavour, a.number"
        )
