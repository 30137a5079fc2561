"""Leases through outages, against a real redis-server and real `kbo coordinator` /
`kbo worker` processes: a coordinator killed or paused, or a broker stopped, for longer
than the lease loses no running build and redoes no finished one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbo.orchestrator.listening import Listening
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
