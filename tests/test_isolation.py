"""A build step cannot reach the network, read /root or kbo's config, or outlive its
timeout. Real namespaces, real processes, run as the worker's unprivileged user; each
check also runs unconfined, so it can fail."""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbo.workers import runner, sandbox
from kbo.workers.prepared_tree import build_env
from tests.conftest import WORKER_USER

AS_WORKER = ["setpriv", f"--reuid={WORKER_USER}", f"--regid={WORKER_USER}", "--clear-groups"]


@pytest.fixture
def spec(tmp_path: Path) -> sandbox.Spec:
    build = tmp_path / "build"
    build.mkdir()
    user = pwd.getpwnam(WORKER_USER)
    os.chown(build, user.pw_uid, user.pw_gid)
    return sandbox.Spec(
        etc=str(sandbox.write_etc(tmp_path / "etc")),
        binds=((str(build), "/build", True),),
        env=build_env(),
    )


def run(
    argv: list[str],
    spec: sandbox.Spec | None,
    tmp_path: Path,
    timeout: float = 60,
) -> tuple[runner.RunResult, str]:
    """Run ``argv`` as the worker does: as its unprivileged user, in ``spec``'s sandbox
    (or, to show that a check can fail, unconfined and as root)."""
    log = tmp_path / "step.log"
    with log.open("wb") as out:
        command = [*AS_WORKER, "--", *sandbox.wrap(argv, spec)] if spec else argv
        result = runner.run(command, log=out, timeout=timeout, no_output_timeout=timeout)
    return result, log.read_text(errors="replace")


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server on the host's loopback, accepting connections."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def accept() -> None:
        with contextlib.suppress(OSError):  # closed at teardown
            while True:
                server.accept()[0].close()

    threading.Thread(target=accept, daemon=True).start()
    yield port
    server.close()


def connect(port: int) -> list[str]:
    return ["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 3)"]


def test_no_network_unless_the_recipe_asks(
    spec: sandbox.Spec, listener: int, tmp_path: Path
) -> None:
    assert run(connect(listener), None, tmp_path)[0].ok
    refused, log = run(connect(listener), spec, tmp_path)
    assert not refused.ok and "Error" in log
    allowed = sandbox.Spec(**{**spec.__dict__, "network": True})
    assert run(connect(listener), allowed, tmp_path)[0].ok


def test_cannot_read_root_or_kbos_config(spec: sandbox.Spec, tmp_path: Path) -> None:
    secret = Path("/root/kbo-isolation-probe")
    config = tmp_path / "kbo.toml"
    etc = Path("/etc/kbo")
    made_etc = not etc.exists()
    etc.mkdir(exist_ok=True)
    try:
        for path in (secret, config, etc / "kbo-isolation-probe.toml"):
            path.write_text('broker_url = "redis://:secret@x/0"\n')
            assert run(["cat", str(path)], None, tmp_path)[0].ok
            result, log = run(["cat", str(path)], spec, tmp_path)
            assert not result.ok, path
            assert "secret" not in log
    finally:
        secret.unlink(missing_ok=True)
        (etc / "kbo-isolation-probe.toml").unlink(missing_ok=True)
        if made_etc:
            etc.rmdir()


def test_the_step_runs_as_the_build_user_in_a_fresh_root(
    spec: sandbox.Spec, tmp_path: Path
) -> None:
    result, log = run(
        ["sh", "-c", "id -un; hostname; ls /; touch /build/ok; touch /usr/x"], spec, tmp_path
    )
    assert not result.ok  # /usr is read-only
    assert "kbo-build\nkbo-build\n" in log
    assert "root\n" not in log.split("\n", 2)[2]  # no /root in the listing
    assert (tmp_path / "build" / "ok").exists()


def test_nothing_outlives_a_timeout(spec: sandbox.Spec, tmp_path: Path) -> None:
    marker = "3141"
    start = time.monotonic()
    result, _ = run(
        ["sh", "-c", f"sleep {marker} & sleep {marker} & sleep {marker}"], spec, tmp_path, timeout=2
    )
    assert result.timed_out and time.monotonic() - start < 15
    time.sleep(0.5)
    survivors = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert survivors.stdout == ""


def test_no_output_limit_kills_a_silent_step(spec: sandbox.Spec, tmp_path: Path) -> None:
    log = tmp_path / "quiet.log"
    with log.open("wb") as out:
        result = runner.run(
            [*AS_WORKER, "--", *sandbox.wrap(["sh", "-c", "echo start; sleep 60"], spec)],
            log=out,
            timeout=120,
            no_output_timeout=2,
        )
    assert result.timed_out == "no output for 2 s"
    assert "killed after 2 s without output" in log.read_text()


def test_the_step_holds_no_capability_and_sees_a_minimal_etc(
    spec: sandbox.Spec, tmp_path: Path
) -> None:
    script = (
        "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; ls /etc; "
        "grep -E ' /dev ' /proc/self/mounts; "
        "for f in /proc/sys/kernel/hostname /proc/sysrq-trigger; do "
        "test -w $f && echo can-write $f; done; echo 1 > /proc/sys/kernel/ns_last_pid"
    )
    result, log = run(["sh", "-c", script], spec, tmp_path)
    assert not result.ok  # /proc/sys cannot be written
    assert "can-write /proc" not in log
    unconfined = run(["sh", "-c", script], None, tmp_path)[1]
    assert "can-write /proc/sys/kernel/hostname" in unconfined  # as root, outside: it can
    assert "CapEff:\t0000000000000000" in log and "CapBnd:\t0000000000000000" in log
    assert "NoNewPrivs:\t1" in log
    listed = set(log.split("NoNewPrivs:\t1\n", 1)[1].split("tmpfs /dev", 1)[0].split())
    assert listed <= {*sandbox.ETC_FROM_HOST, "passwd", "group", "hosts"}, listed
    assert {"passwd", "alternatives"} <= listed and "shadow" not in listed
    mounts = [line.split() for line in log.splitlines() if line.startswith(("tmpfs ", "proc "))]
    dev = next(m for m in mounts if m[1] == "/dev")
    assert {"nodev", "nosuid"} <= set(dev[3].split(","))


def test_a_worker_that_cannot_sandbox_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbo.config import Config
    from kbo.errors import InfraError
    from kbo.workers.privileges import check_sandbox

    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap, unshare or prlimit there
    with pytest.raises(InfraError, match="cannot build unprivileged: bwrap, unshare, prlimit"):
        check_sandbox(Config(state_dir=str(tmp_path / "state")))
