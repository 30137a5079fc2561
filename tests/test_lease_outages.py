"""Leases through outages, against a real redis-server and real `kbo coordinator` /
`kbo worker` processes: a coordinator killed or paused for longer than the lease loses
no running build and redoes no finished one, and a worker whose lease did lapse stops
its build and reports nothing."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbo.config import Config
from kbo.messaging.app import make_app
from kbo.orchestrator.coordinator import Coordinator
from kbo.orchestrator.listening import Listening
from kbo.orchestrator.state import JobSpec, Run
from kbo.workers import runner
from tests.conftest import KBO
from tests.services import Cluster, RedisServer, wait_for
from tests.test_fanout import pgrep

LEASE = 4  # seconds, as tests/services.py configures it


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, broker_url=redis_server.url, lease_seconds=LEASE)
    yield cluster
    cluster.stop_all()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_lease_lapses_before_a_whole_lease_period_was_heard() -> None:
    clock = FakeClock()
    listening = Listening(clock)
    assert not listening.may_lapse_leases(LEASE)  # not connected yet: nothing heard
    listening.connected()
    clock.now += LEASE - 0.1
    assert not listening.may_lapse_leases(LEASE)
    clock.now += 0.1
    assert listening.may_lapse_leases(LEASE)

    listening.interrupted(30)  # the process was paused: start again
    assert not listening.may_lapse_leases(LEASE)
    clock.now += LEASE
    assert listening.may_lapse_leases(LEASE)

    listening.disconnected()  # the broker is gone: heard nothing since
    clock.now += 10 * LEASE
    listening.interrupted(30)  # a pause while disconnected connects nothing
    assert not listening.may_lapse_leases(LEASE)
    listening.connected()
    assert not listening.may_lapse_leases(LEASE)
    clock.now += LEASE
    assert listening.may_lapse_leases(LEASE)


def test_a_heartbeat_answers_whether_the_lease_is_held(tmp_path: Path) -> None:
    config = Config(state_dir=str(tmp_path), lease_seconds=LEASE)
    coordinator = Coordinator(config, make_app(config))
    run = Run("r", "me", "", "src", "main", "c", "noop", "1")
    specs = [JobSpec("src", "c", "noop", "alpha", "none", f) for f in ("a", "b")]
    done, lapsed = coordinator.state.record_run(run, specs)
    for attempt in (done, lapsed):
        coordinator.claim(attempt, f"token-{attempt}", "w", "h")
    assert coordinator.heartbeat(done, f"token-{done}") == "held"
    assert coordinator.heartbeat(done, "another delivery") == "lost"
    coordinator.finished(done, f"token-{done}", {"outcome": "succeeded"})
    assert coordinator.heartbeat(done, f"token-{done}") == "ended"

    coordinator.state.db.execute("UPDATE attempts SET lease_expires = 0 WHERE id = ?", (lapsed,))
    coordinator.state.db.commit()
    assert coordinator.state.expire_leases(max_attempts=3)  # a new attempt is queued
    assert coordinator.heartbeat(lapsed, f"token-{lapsed}") == "lost"


def test_a_stopped_build_has_its_command_killed_and_starts_no_other(tmp_path: Path) -> None:
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    with (tmp_path / "log").open("wb") as log, runner.stopped_by(stop, "the lease is lost"):
        ran = runner.run(["sleep", "30"], log=log, timeout=60, no_output_timeout=60)
        assert ran.timed_out == "the lease is lost"
        assert ran.duration < 10
        assert runner.run(["true"], log=log, timeout=60, no_output_timeout=60).ok is False
    assert "kbo: not run: the lease is lost" in (tmp_path / "log").read_text()


def succeeded(cluster: Cluster) -> int:
    return len(cluster.query("SELECT * FROM jobs WHERE state = 'succeeded'"))


def running(cluster: Cluster) -> int:
    return len(cluster.query("SELECT * FROM attempts WHERE state = 'running'"))


def test_builds_outlive_a_coordinator_killed_for_three_lease_periods(cluster: Cluster) -> None:
    """The heartbeats queued while the coordinator was down renew every lease before any
    can lapse: every job succeeds once, with its first attempt."""
    (cluster.control / "sleep").write_text("16")
    cluster.start_coordinator()
    cluster.start_worker("w1", "alpha,hppa", "--slots", "4")
    cluster.submit("--arch", "alpha,hppa")
    wait_for(lambda: running(cluster) == 4, 60, "four builds to start")
    cluster.kill("coordinator")
    time.sleep(3 * LEASE)
    cluster.start_coordinator()
    wait_for(lambda: succeeded(cluster) == 4, 60, "every job to succeed")
    attempts = cluster.attempts()
    assert [(a["number"], a["state"]) for a in attempts] == [(1, "succeeded")] * 4, [
        dict(a) for a in attempts
    ]
    assert "refused" not in cluster.log("coordinator")
    assert "refused" not in cluster.log("w1")


def test_a_report_held_up_by_a_paused_coordinator_is_accepted(cluster: Cluster) -> None:
    """The build ends while the coordinator is stopped (SIGSTOP) for three lease periods;
    the worker keeps the lease until its report is answered, and the coordinator, back,
    lapses no lease before the heartbeats could reach it: nothing is built again."""
    (cluster.control / "sleep").write_text("2")
    cluster.start_coordinator()
    cluster.start_worker("w1", "alpha")
    cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
    wait_for(lambda: running(cluster) == 1, 60, "the build to start")
    cluster.pause("coordinator")
    time.sleep(3 * LEASE)  # the build ends meanwhile; its report waits in the queue
    cluster.resume("coordinator")
    wait_for(lambda: succeeded(cluster) == 1, 30, "the report to be recorded")
    time.sleep(LEASE + 2)  # a lease lapsing now would show as a second attempt
    attempts = cluster.attempts()
    assert [(a["number"], a["state"]) for a in attempts] == [(1, "succeeded")], [
        dict(a) for a in attempts
    ]
    assert "refused" not in cluster.log("coordinator")
    assert "alpha_none_alpha-smp try 1 (attempt 1): succeeded" in cluster.log("w1")


def test_builds_outlive_a_broker_down_for_three_lease_periods(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    """Redis stops while a build runs and comes back three lease periods later: the
    coordinator heard nothing meanwhile, so it lapses no lease before the worker's
    heartbeats could reach it again."""
    (cluster.control / "sleep").write_text("16")
    cluster.start_coordinator()
    cluster.start_worker("w1", "alpha")
    cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
    wait_for(lambda: pgrep("sleep 16"), 60, "the build's step to run")
    redis_server.stop()
    time.sleep(3 * LEASE)
    redis_server.start()
    wait_for(lambda: succeeded(cluster) == 1, 60, "the job to succeed")
    attempts = cluster.attempts()
    assert [(a["number"], a["state"]) for a in attempts] == [(1, "succeeded")], [
        dict(a) for a in attempts
    ]
    assert "report from attempt 1 refused" not in cluster.log("coordinator")


def test_a_worker_told_its_lease_is_lost_stops_the_build_and_reports_nothing(
    cluster: Cluster,
) -> None:
    """The worker is paused past its lease; the coordinator queues a new attempt. Back,
    the worker hears from its next heartbeat that the lease is lost: it kills the step at
    once (its slot is free for the new attempt long before the step would have ended)
    and sends no report."""
    (cluster.control / "sleep").write_text("2994")
    cluster.start_coordinator()
    cluster.start_worker("w1", "alpha")
    cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
    wait_for(lambda: pgrep("sleep 2994"), 60, "the build's step to run")
    cluster.pause("w1")
    wait_for(
        lambda: cluster.query("SELECT * FROM attempts WHERE state = 'lost'"),
        3 * LEASE,
        "the lease to lapse",
    )
    (cluster.control / "sleep").write_text("1")  # for the new attempt
    resumed = time.monotonic()
    cluster.resume("w1")
    wait_for(lambda: succeeded(cluster) == 1, 30, "the new attempt to succeed")
    assert time.monotonic() - resumed < 25  # the lost attempt's step was killed
    assert not pgrep("sleep 2994")
    attempts = cluster.attempts()
    assert [(a["number"], a["state"]) for a in attempts] == [(1, "lost"), (2, "succeeded")]
    assert "attempt 1: the coordinator says the lease is lost" in cluster.log("w1")
    assert "report from attempt 1 refused" not in cluster.log("coordinator")


class HangingServer:
    """A TCP server on 127.0.0.1 that accepts and never answers: a `git clone` of it
    hangs until the server closes."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self.socket.accept()[0])

    def close(self) -> None:
        self.socket.close()
        for connection in self.accepted:
            connection.close()


def test_a_slow_submit_lapses_no_lease(cluster: Cluster) -> None:
    """The coordinator spends three lease periods on a submit whose `git clone` hangs,
    while a build runs and ends: its heartbeats travel on their own queue, so its lease
    holds until its report, queued behind the submit, is answered."""
    (cluster.control / "sleep").write_text("3.5")
    cluster.start_coordinator()
    cluster.start_worker("w1", "alpha")
    cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
    wait_for(lambda: pgrep("sleep 3.5"), 60, "the build's step to run")
    server = HangingServer()
    try:
        slow = subprocess.Popen(
            [str(KBO), "submit", "--json", f"http://127.0.0.1:{server.port}/linux.git"],
            env=cluster.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: server.accepted, 30, "the coordinator's git to connect")
        time.sleep(3 * LEASE)  # the build ends meanwhile; its report waits in the queue
    finally:
        server.close()
    assert slow.wait(60) == 3  # git could not fetch
    wait_for(lambda: succeeded(cluster) == 1, 30, "the report to be recorded")
    attempts = cluster.attempts()
    assert [(a["number"], a["state"]) for a in attempts] == [(1, "succeeded")], [
        dict(a) for a in attempts
    ]
    assert "refused" not in cluster.log("coordinator")


@contextlib.contextmanager
def database_held(cluster: Cluster) -> Iterator[None]:
    """The state database locked against the coordinator's writes, as a long transaction
    would: what the coordinator is handed meanwhile waits, half done, for the lock."""
    import sqlite3

    db = sqlite3.connect(cluster.tmp / "state" / "kbo.sqlite", isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


def taken_unacknowledged(redis_server: RedisServer, task: str) -> bool:
    """Whether a consumer has taken a ``task`` message off its queue and not yet
    acknowledged it (kombu keeps such messages in the ``unacked`` hash)."""
    return any(task.encode() in message for message in redis_server.client().hvals("unacked"))


@pytest.mark.parametrize("window", ["kbo.claim", "kbo.finished"])
def test_a_coordinator_killed_while_it_handles_a_claim_or_a_report_costs_no_rebuild(
    tmp_path: Path, redis_server: RedisServer, window: str
) -> None:
    """The coordinator takes the claim (or the report) and is killed before it answers:
    the message stays unacknowledged in Redis for the broker's visibility timeout, hours.
    The worker asks again after a bounded wait, and the coordinator that comes back
    answers it: the job is built once, within seconds of the restart."""
    cluster = Cluster(tmp_path, broker_url=redis_server.url, lease_seconds=LEASE, reply_seconds=2)
    try:
        (cluster.control / "sleep").write_text("3")
        cluster.start_coordinator()
        if window == "kbo.claim":
            cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
            held = database_held(cluster)
            held.__enter__()
            cluster.start_worker("w1", "alpha")
        else:
            cluster.start_worker("w1", "alpha")
            cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
            wait_for(lambda: running(cluster) == 1, 60, "the build to start")
            held = database_held(cluster)
            held.__enter__()
        wait_for(
            lambda: taken_unacknowledged(redis_server, window),
            60,
            f"the coordinator to take {window}",
        )
        cluster.kill("coordinator")
        held.__exit__(None, None, None)
        restarted = time.monotonic()
        cluster.start_coordinator()
        wait_for(lambda: succeeded(cluster) == 1, 60, "the job to succeed")
        assert time.monotonic() - restarted < 60
        attempts = cluster.attempts()
        assert [(a["number"], a["state"]) for a in attempts] == [(1, "succeeded")], [
            dict(a) for a in attempts
        ]
    finally:
        cluster.stop_all()


def test_a_request_a_killed_coordinator_held_is_handled_once_when_it_starts_again(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """The coordinator takes a client's submit and is killed before it answers. The next
    coordinator puts the message it held back on its queue at start, instead of leaving it
    to the broker's visibility timeout (hours): the waiting client gets its answer, and the
    run is recorded once."""
    cluster = Cluster(tmp_path, broker_url=redis_server.url, lease_seconds=LEASE)
    try:
        cluster.start_coordinator()
        held = database_held(cluster)
        held.__enter__()
        client = subprocess.Popen(
            [str(KBO), "submit", "--json", "--arch", "alpha", "--flavour", "alpha-smp"],
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(
            lambda: taken_unacknowledged(redis_server, "kbo.submit"),
            60,
            "the coordinator to take kbo.submit",
        )
        cluster.kill("coordinator")
        held.__exit__(None, None, None)
        assert client.poll() is None  # still waiting for its answer
        restarted = time.monotonic()
        cluster.start_coordinator()
        out, err = client.communicate(timeout=60)
        assert client.returncode == 0, err
        assert time.monotonic() - restarted < 30
        (job,) = json.loads(out)["jobs"]
        assert (job["arch"], job["flavour"]) == ("alpha", "alpha-smp")
        assert "1 message(s) a coordinator took and never answered" in cluster.log("coordinator")
        assert len(cluster.query("SELECT id FROM runs")) == 1
        assert not taken_unacknowledged(redis_server, "kbo.submit")
    finally:
        cluster.stop_all()
