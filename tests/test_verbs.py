"""The maintainer's verbs against a real redis-server and real `kbo coordinator` and
`kbo worker` processes: waiting with a timeout, cancel, retry (a give-back), the worker
inventory and the arches no live worker serves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import Cluster, RedisServer, wait_for


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, broker_url=redis_server.url)
    yield cluster
    cluster.stop_all()


def test_submit_wait_timeout_stops_waiting_with_its_own_status(cluster: Cluster) -> None:
    cluster.start_coordinator()  # and no worker: nothing will build
    started = time.monotonic()
    result = cluster.kbo("submit", "--arch", "alpha", "--wait", "--timeout", "2")
    took = time.monotonic() - started
    assert result.returncode == 124, result.stderr
    assert 2 <= took < 10, took
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kbo: stopped waiting after 2 s"), lines
    assert "2 of 2 jobs" in lines[0] and "stay queued" in lines[0]
    assert {row[0] for row in cluster.query("SELECT state FROM jobs")} == {"queued"}


def one_job(cluster: Cluster) -> dict[str, Any]:
    """Submit alpha's alpha-smp flavour alone; its job as the run's JSON shows it."""
    (job,) = cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")["jobs"]
    return dict(job)


def test_a_cancelled_queued_job_is_never_built(cluster: Cluster) -> None:
    cluster.start_coordinator()
    job = one_job(cluster)
    result = cluster.kbo("cancel", str(job["id"]))
    assert result.returncode == 0, result.stderr
    assert f"job {job['id']} alpha_none_alpha-smp: cancelled (was queued)" in result.stdout
    cluster.start_worker("w-alpha", "alpha")
    wait_for(lambda: "refused by the coordinator" in cluster.log("w-alpha"), 30, "the refusal")
    assert [(a["state"], a["worker"]) for a in cluster.attempts()] == [("cancelled", None)]
    assert cluster.query("SELECT state FROM jobs")[0][0] == "cancelled"
    assert "built alpha" not in cluster.log("w-alpha")
    again = cluster.kbo("cancel", str(job["id"]))
    assert (again.returncode, again.stdout.strip()) == (
        0,
        f"job {job['id']} alpha_none_alpha-smp: already cancelled",
    )


def test_cancelling_a_run_cancels_its_running_job_and_refuses_its_report(
    cluster: Cluster,
) -> None:
    (cluster.control / "sleep").write_text("4")
    cluster.start_coordinator()
    cluster.start_worker("w-alpha", "alpha")
    run = cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
    wait_for(lambda: cluster.query("SELECT * FROM jobs WHERE state = 'running'"), 60, "running")
    result = cluster.kbo("cancel", run["id"])
    assert result.returncode == 0, result.stderr
    assert "cancelled (was running): its worker is told" in result.stdout
    assert f"run {run['id']}: 1 jobs cancelled, 0 had ended" in result.stdout
    wait_for(lambda: "report from attempt 1 refused" in cluster.log("coordinator"), 60, "report")
    assert cluster.query("SELECT state FROM jobs")[0][0] == "cancelled"
    (attempt,) = cluster.attempts()
    assert attempt["state"] == "cancelled" and attempt["first_error"].startswith("cancelled by ")
    # A new submission queues the cancelled job again.
    assert one_job(cluster)["attempts"] == 2


def test_retry_gives_a_failed_job_a_new_attempt_that_builds(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("w-alpha", "alpha")
    (cluster.control / "fail-alpha").touch()
    (job,) = cluster.submit("--arch", "alpha", "--flavour", "alpha-smp", "--wait")["jobs"]
    assert job["state"] == "failed"
    (cluster.control / "fail-alpha").unlink()
    result = cluster.kbo("retry", str(job["id"]))
    assert result.returncode == 0, result.stderr
    assert "attempt 2 queued, a manual retry by " in result.stdout
    wait_for(lambda: cluster.query("SELECT * FROM jobs WHERE state = 'succeeded'"), 60, "built")
    attempts = cluster.attempts()
    assert [(a["number"], a["state"]) for a in attempts] == [(1, "failed"), (2, "succeeded")]
    assert attempts[0]["retried_by"] is None and "@" in attempts[1]["retried_by"]
    again = cluster.kbo("retry", str(job["id"]))
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        f"kbo: job {job['id']} succeeded: only a job that ended failed, infra-error, "
        "dep-wait, cancelled is retried"
    ]


def test_retry_refuses_a_queued_job_in_one_line(cluster: Cluster) -> None:
    cluster.start_coordinator()
    job = one_job(cluster)
    result = cluster.kbo("retry", str(job["id"]))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"kbo: job {job['id']} is queued: only a job that ended failed, infra-error, "
        "dep-wait, cancelled is retried"
    ]
    assert len(cluster.attempts()) == 1


def test_cancel_and_retry_work_in_embedded_mode(tmp_path: Path) -> None:
    """No broker: each verb starts a local coordinator for its request; the retried
    attempt builds at the next `submit --wait`, which starts local workers."""
    cluster = Cluster(tmp_path)
    try:
        job = one_job(cluster)
        cancelled = cluster.kbo("cancel", str(job["id"]))
        assert cancelled.returncode == 0, cancelled.stderr
        assert cluster.query("SELECT state FROM jobs")[0][0] == "cancelled"
        retried = cluster.kbo("retry", str(job["id"]))
        assert retried.returncode == 0, retried.stderr
        run = cluster.submit("--arch", "alpha", "--flavour", "alpha-smp", "--wait")
        assert run["succeeded"] is True
        assert [(a["state"], bool(a["retried_by"])) for a in cluster.attempts()] == [
            ("cancelled", False),
            ("succeeded", True),
        ]
    finally:
        cluster.stop_all()
