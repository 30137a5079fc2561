"""The fan-out core against a real redis-server and real `kbo coordinator` / `kbo worker`
processes: routing, staleness, failures, duplicates, a killed worker, a Redis restart."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import Cluster, RedisServer, wait_for

ALPHA_HPPA_MIPS = {"alpha": 2, "hppa": 2, "mips": 3}


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, broker_url=redis_server.url)
    yield cluster
    cluster.stop_all()


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    """A coordinator, one worker for alpha and hppa, another for mips."""
    cluster.start_coordinator()
    cluster.start_worker("w-alpha-hppa", "alpha,hppa")
    cluster.start_worker("w-mips", "mips")
    return cluster


def states(cluster: Cluster) -> dict[str, str]:
    return {name: arch["state"] for name, arch in cluster.status().items()}


def test_jobs_reach_workers_that_serve_their_arch(running: Cluster) -> None:
    run = running.submit("--arch", "alpha,hppa,mips", "--wait")
    assert run["succeeded"] is True
    assert len(run["jobs"]) == sum(ALPHA_HPPA_MIPS.values()) == 7
    attempts = running.attempts()
    assert len(attempts) == 7
    for attempt in attempts:
        expected = "w-mips@test" if attempt["arch"] == "mips" else "w-alpha-hppa@test"
        assert attempt["worker"] == expected, dict(attempt)
        assert attempt["state"] == "succeeded"
        assert attempt["executor"] == "cross"
    status = running.status()
    assert {name: s["state"] for name, s in status.items()} == dict.fromkeys(ALPHA_HPPA_MIPS, "OK")
    assert all(s["commits_behind"] == 0 for s in status.values())


def test_staleness_follows_commits_and_flavours(running: Cluster) -> None:
    running.submit("--arch", "alpha,hppa,mips", "--wait")
    first = running.commit("Bump ABI")
    status = running.status()
    assert {n: s["state"] for n, s in status.items()} == dict.fromkeys(ALPHA_HPPA_MIPS, "STALE")
    assert all(s["commits_behind"] == 1 and s["age_seconds"] is not None for s in status.values())

    running.submit("--arch", "alpha", "--wait")
    assert states(running) == {"alpha": "OK", "hppa": "STALE", "mips": "STALE"}

    defines = running.repo / "debian/config/alpha/defines"
    running.commit(
        "alpha: add the alpha-legacy flavour",
        "debian/config/alpha/defines",
        defines.read_text().replace(
            "alpha-generic alpha-smp", "alpha-generic alpha-smp alpha-legacy"
        ),
    )
    alpha = running.status()["alpha"]
    assert alpha["state"] == "STALE"
    assert alpha["last_good"]["commit"] == first
    assert alpha["commits_behind"] == 1
    legacy = {f["name"]: f for f in alpha["flavours"]}["alpha/none/alpha-legacy"]
    assert legacy["state"] == "NEVER"


def test_failure_shows_names_its_commit_and_clears(running: Cluster) -> None:
    (running.control / "fail-alpha").touch()
    run = running.submit("--arch", "alpha", "--wait")
    assert run["succeeded"] is False
    assert {j["state"] for j in run["jobs"]} == {"failed"}
    assert run["jobs"][0]["first_error"].startswith("arch/alpha/kernel/setup.c:42:7: error:")
    alpha = running.status()["alpha"]
    assert alpha["state"] == "FAILING"
    assert alpha["failing_commit"] == run["commit_sha"]
    assert running.kbo("status").returncode == 1

    (running.control / "fail-alpha").unlink()
    fixed = running.submit("--arch", "alpha", "--wait")
    assert fixed["succeeded"] is True
    assert states(running)["alpha"] == "OK"


def test_submitting_twice_enqueues_nothing_new(cluster: Cluster, redis_server: RedisServer) -> None:
    cluster.start_coordinator()
    first = cluster.submit("--arch", "alpha")
    assert redis_server.queue_length("build.alpha") == 2
    again = cluster.submit("--arch", "alpha")
    assert first["id"] != again["id"]
    assert redis_server.queue_length("build.alpha") == 2
    assert len(cluster.query("SELECT * FROM jobs")) == 2
    assert len(cluster.query("SELECT * FROM attempts")) == 2

    cluster.start_worker("w-alpha", "alpha")
    wait_for(
        lambda: len(cluster.query("SELECT * FROM jobs WHERE state = 'succeeded'")) == 2,
        60,
        "both alpha jobs",
    )
    done = cluster.submit("--arch", "alpha", "--wait")
    assert done["succeeded"] is True
    assert redis_server.queue_length("build.alpha") == 0
    # Every answer was read once and forgotten: waiting leaves no results in Redis, and
    # the coordinator's log has no line per poll.
    assert redis_server.client().keys("celery-task-meta-*") == []
    assert "Task kbo.run_summary" not in cluster.log("coordinator")
    assert "alpha_none_alpha-smp try 1 (attempt 2): succeeded" in cluster.log("coordinator")
    assert len(cluster.query("SELECT * FROM attempts")) == 2
    assert cluster.query("SELECT COUNT(*) FROM runs")[0][0] == 3


def test_a_killed_workers_build_dies_with_it_and_its_directory_goes(cluster: Cluster) -> None:
    """SIGKILL to the worker's process group, as the OOM killer or a crash would: the
    sandboxed step dies with it (bwrap --die-with-parent), and the next worker on the
    host removes the dead build's directory."""
    (cluster.control / "sleep").write_text("2997")
    cluster.start_coordinator()
    cluster.start_worker("w1", "alpha")
    cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
    builds = cluster.tmp / "state" / "worker" / "builds"
    wait_for(lambda: pgrep("sleep 2997"), 60, "the build's step to run")
    assert [p.name for p in builds.iterdir()]
    cluster.kill("w1")
    wait_for(lambda: not pgrep("sleep 2997"), 10, "the killed worker's build to die")
    assert [p.name for p in builds.iterdir()]  # left behind by the dead worker

    (cluster.control / "sleep").unlink()
    cluster.start_worker("w2", "alpha")
    wait_for(lambda: cluster.query("SELECT * FROM jobs WHERE state = 'succeeded'"), 90, "w2")
    assert list(builds.iterdir()) == []
    assert "removed 1 build directories left by a dead worker" in cluster.log("w2")


def pgrep(pattern: str) -> str:
    found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return "".join(line for line in found.stdout.splitlines(True) if "pgrep" not in line)


def test_killed_worker_job_completes_elsewhere_and_late_reports_are_refused(
    cluster: Cluster,
) -> None:
    (cluster.control / "sleep").write_text("3")
    cluster.start_coordinator()
    cluster.start_worker("w1", "alpha")
    cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
    wait_for(
        lambda: cluster.query("SELECT * FROM attempts WHERE state = 'running'"),
        60,
        "the build to start on w1",
    )
    cluster.start_worker("w2", "alpha")
    cluster.kill("w1")
    wait_for(
        lambda: cluster.query("SELECT * FROM jobs WHERE state = 'succeeded'"),
        90,
        "the job to complete on w2",
    )

    attempts = cluster.attempts()
    assert [(a["number"], a["state"], a["worker"]) for a in attempts] == [
        (1, "lost", "w1@test"),
        (2, "succeeded", "w2@test"),
    ]
    lost = attempts[0]
    assert "stopped renewing its lease" in lost["first_error"]

    # The dead attempt reports late, and its message is delivered again: both refused.
    from kbo import messaging
    from kbo.config import load_config
    from kbo.messaging.app import make_app

    app = make_app(load_config(str(cluster.config)))
    messaging.send(
        app, "kbo.finished", lost["id"], lost["token"], {"outcome": "failed", "first_error": "late"}
    )
    wait_for(
        lambda: f"report from attempt {lost['id']} refused" in cluster.log("coordinator"),
        30,
        "the late report to be refused",
    )
    messaging.publish_build(app, lost["id"], "alpha")
    wait_for(lambda: "refused by the coordinator" in cluster.log("w2"), 30, "the refusal")
    assert [a["state"] for a in cluster.attempts()] == ["lost", "succeeded"]
    assert cluster.query("SELECT state FROM jobs")[0][0] == "succeeded"


def test_redis_restart_loses_and_duplicates_nothing(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    (cluster.control / "sleep").write_text("1")
    cluster.start_coordinator()
    cluster.start_worker("w1", "alpha,hppa,mips")
    cluster.submit("--arch", "alpha,hppa,mips")
    wait_for(
        lambda: cluster.query("SELECT * FROM jobs WHERE state = 'succeeded'"),
        60,
        "a first job to finish",
    )
    redis_server.restart()
    wait_for(
        lambda: len(cluster.query("SELECT * FROM jobs WHERE state = 'succeeded'")) == 7,
        120,
        "every job to finish after the restart",
    )
    attempts = cluster.attempts()
    assert len(attempts) == 7, [dict(a) for a in attempts]
    assert {a["state"] for a in attempts} == {"succeeded"}


def test_each_attempt_is_published_once(cluster: Cluster, redis_server: RedisServer) -> None:
    """The whole matrix (50 jobs), no worker: the submission and the lease sweep (every
    second) never both publish an attempt, so the queues hold exactly 50 messages."""
    cluster.start_coordinator()
    run = cluster.submit()
    assert len(run["jobs"]) == 50
    arches = {job["arch"] for job in run["jobs"]}
    time.sleep(3)  # a few sweeps
    assert sum(redis_server.queue_length(f"build.{arch}") for arch in arches) == 50
