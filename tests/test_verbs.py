"""The maintainer's verbs against a real redis-server and real `kbo coordinator` and
`kbo worker` processes: waiting with a timeout, cancel, retry (a give-back), the worker
inventory and the arches no live worker serves."""

from __future__ import annotations

import json
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
    alpha = cluster.status()["alpha"]
    assert alpha["cancelled"].startswith("cancelled by ")
    assert {f["name"]: f["cancelled"] is not None for f in alpha["flavours"]} == {
        "alpha/none/alpha-generic": False,
        "alpha/none/alpha-smp": True,
    }
    text = cluster.kbo("status").stdout
    assert next(ln for ln in text.splitlines() if ln.startswith("alpha ")).endswith("cancelled")
    assert "  alpha/none/alpha-smp: cancelled by " in text
    again = cluster.kbo("cancel", str(job["id"]))
    assert (again.returncode, again.stdout.strip()) == (
        0,
        f"job {job['id']} alpha_none_alpha-smp: already cancelled",
    )


def test_cancelling_a_run_stops_its_running_build_at_the_next_heartbeat(
    cluster: Cluster,
) -> None:
    (cluster.control / "sleep").write_text("120")
    cluster.start_coordinator()
    cluster.start_worker("w-alpha", "alpha")
    run = cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
    wait_for(lambda: cluster.query("SELECT * FROM jobs WHERE state = 'running'"), 60, "running")
    cancelled = time.monotonic()
    result = cluster.kbo("cancel", run["id"])
    assert result.returncode == 0, result.stderr
    assert "cancelled (was running): its worker stops it at its next heartbeat" in result.stdout
    assert f"run {run['id']}: 1 jobs cancelled, 0 had ended" in result.stdout
    wait_for(lambda: "stopped, nothing reported" in cluster.log("w-alpha"), 60, "the stop")
    assert time.monotonic() - cancelled < 60  # not the 120 s the build would take
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
        "dep-wait, lost, cancelled is retried"
    ]


def test_retry_refuses_a_queued_job_in_one_line(cluster: Cluster) -> None:
    cluster.start_coordinator()
    job = one_job(cluster)
    result = cluster.kbo("retry", str(job["id"]))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"kbo: job {job['id']} is queued: only a job that ended failed, infra-error, "
        "dep-wait, lost, cancelled is retried"
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


def test_workers_lists_a_started_worker_with_its_arches_jobs_and_last_seen(
    cluster: Cluster,
) -> None:
    (cluster.control / "sleep").write_text("6")
    cluster.start_coordinator()
    cluster.start_worker("w-alpha-hppa", "alpha,hppa", "--slots", "2")
    listed = wait_for(lambda: workers(cluster), 30, "the worker's announcement")
    (worker,) = listed
    assert (worker["name"], worker["arches"], worker["slots"]) == (
        "w-alpha-hppa@test",
        ["alpha", "hppa"],
        2,
    )
    executors = worker["executors"]
    assert sorted(executors) == ["alpha", "hppa"] and "cross" in executors["alpha"]
    assert worker["live"] is True and time.time() - worker["last_seen"] < 10
    assert (worker["jobs"], worker["infra_errors"]) == ([], 0)
    cluster.submit("--arch", "alpha", "--flavour", "alpha-smp")
    wait_for(lambda: workers(cluster)[0]["jobs"] == ["alpha_none_alpha-smp"], 60, "its running job")
    text = cluster.kbo("workers")
    assert text.returncode == 0, text.stderr
    header, row = text.stdout.splitlines()
    assert header.split()[:8] == [
        "NAME",
        "HOST",
        "ARCHES",
        "EXECUTORS",
        "SLOTS",
        "VERSION",
        "LAST",
        "SEEN",
    ]
    shown = ",".join(sorted({e for each in executors.values() for e in each}))
    assert row.split()[:5] == ["w-alpha-hppa@test", worker["host"], "alpha,hppa", shown, "2"]
    assert " ago " in row and "alpha_none_alpha-smp" in row


def workers(cluster: Cluster) -> list[dict[str, Any]]:
    result = cluster.kbo("workers", "--json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_status_flags_an_arch_no_live_worker_serves(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("w-alpha-hppa", "alpha,hppa")
    wait_for(lambda: workers(cluster), 30, "the worker's announcement")
    status = cluster.status()
    assert {name: arch["no_worker"] for name, arch in status.items()} == {
        "alpha": False,
        "hppa": False,
        "mips": True,
    }
    text = cluster.kbo("status").stdout
    mips = next(line for line in text.splitlines() if line.startswith("mips "))
    assert mips.endswith("no worker")
    assert "no worker: no live worker serves mips (none seen in 12 s" in text
    page = cluster.tmp / "status.html"
    assert cluster.kbo("status", "--html", page).returncode == 1
    mips_row = next(row for row in page.read_text().split("<tr>") if "<th>mips</th>" in row)
    assert "no worker" in mips_row


def test_snapshots_keep_one_pending_job_for_an_arch_no_live_worker_serves(
    cluster: Cluster,
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("w-alpha-hppa", "alpha,hppa")
    wait_for(lambda: workers(cluster), 30, "the worker's announcement")
    for queued in (1, 0):
        result = cluster.kbo("snapshot", "--json", "--max-jobs", "1")
        assert result.returncode == 0, result.stderr
        mips = next(d for d in json.loads(result.stdout)["decisions"] if d["arch"] == "mips")
        assert (len(mips["jobs"]), mips["no_worker"]) == (queued, True), mips
        assert mips["waiting"], mips  # its other flavours wait for a worker too
    pending = cluster.query("SELECT COUNT(*) FROM jobs WHERE arch = 'mips' AND state = 'queued'")
    assert pending[0][0] == 1


def test_a_malformed_worker_announcement_is_dropped() -> None:
    from kbo.orchestrator.coordinator import worker_info

    good = {
        "name": "kbo-alpha@host",
        "host": "host",
        "arches": ["alpha"],
        "executors": {"alpha": ["cross", "qemu"]},
        "slots": 2,
        "version": "0.1.0",
        "started_at": 1.5,
    }
    assert worker_info(good) is not None
    for key, bad in (
        ("name", "\x1b[31mred"),
        ("host", ""),
        ("arches", "alpha"),
        ("arches", ["../etc"]),
        ("executors", {"hppa": ["cross"]}),
        ("executors", {"alpha": ["kvm"]}),
        ("slots", 0),
        ("slots", True),
        ("version", "x" * 300),
        ("started_at", "now"),
    ):
        assert worker_info(good | {key: bad}) is None, (key, bad)
    assert worker_info(["not", "a", "dict"]) is None
