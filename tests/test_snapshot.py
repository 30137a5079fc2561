"""kbo snapshot against a real redis-server, coordinator and worker processes.

The stand-in recipe here plans one job per arch, so ``--max-jobs 2`` is room for two
arches per run.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KBO, ROOT
from tests.services import Cluster, RedisServer, free_port, wait_for
from tests.test_mail import SmtpServer, body

ARCHES = ["alpha", "amd64", "hppa", "mips", "mipsel"]


def per_arch_recipe(directory: Path, control: Path) -> Path:
    """The stand-in build of tests/recipes/scripted.sh, one job per arch."""
    directory.mkdir()
    script = ROOT / "tests/recipes/scripted.sh"
    (directory / "per-arch.toml").write_text(
        'description = "one stand-in job per arch"\nscope = "arch"\ntimeout = 120\n'
        f'no_output_timeout = 120\nhost_paths = ["{script.parent}", "{control}"]\n'
        f'[[step]]\nname = "build"\nargv = ["/bin/sh", "{script}", "{control}", "{{arch}}"]\n'
    )
    return directory


def per_arch_cluster(tmp_path: Path, redis_server: RedisServer, **settings: Any) -> Cluster:
    """A Redis-mode cluster whose default recipe plans one stand-in job per arch."""
    return Cluster(
        tmp_path,
        broker_url=redis_server.url,
        default_recipe="per-arch",
        recipe_dirs=[str(per_arch_recipe(tmp_path / "per-arch", tmp_path / "control"))],
        **settings,
    )


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    cluster = per_arch_cluster(
        tmp_path,
        redis_server,
        tracked_arches=ARCHES,
        status_page=str(tmp_path / "www/index.html"),
    )
    cluster.start_coordinator()
    yield cluster
    cluster.stop_all()


def snapshot(cluster: Cluster, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run(
        [str(KBO), "snapshot", "--json", *args],
        capture_output=True,
        text=True,
        env=env or cluster.env,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr + cluster.log("coordinator")
    return dict(json.loads(result.stdout))


def queued_arches(reply: dict[str, Any]) -> set[str]:
    return {d["arch"] for d in reply["decisions"] if d["jobs"]}


def not_ok(cluster: Cluster) -> set[str]:
    return {arch for arch, s in cluster.status().items() if s["state"] != "OK"}


def test_stalest_arches_go_first_and_none_waits_more_than_half_the_arches_in_runs(
    cluster: Cluster,
) -> None:
    cluster.start_worker("w1", ",".join(ARCHES), "--slots", "2")
    first = snapshot(cluster, "--wait")  # at A: every tracked arch
    assert queued_arches(first) == set(ARCHES)
    assert all(job["state"] == "succeeded" for job in first["run"]["jobs"])
    assert not_ok(cluster) == set()

    b = cluster.commit("B")
    cluster.submit("--rev", b, "--arch", "amd64,mips", "--wait")  # two arches keep up to B
    cluster.commit("C")
    assert not_ok(cluster) == set(ARCHES)

    runs, waited = [], dict.fromkeys(ARCHES, 0)
    for _ in range(6):
        reply = snapshot(cluster, "--max-jobs", "2", "--wait")
        runs.append(queued_arches(reply))
        if not runs[-1]:
            break
        still = not_ok(cluster)
        for arch in ARCHES:
            waited[arch] = waited[arch] + 1 if arch in still else waited[arch]
    # Two behind first (alpha, hppa, mipsel by name), then the one-behind arches.
    assert runs == [{"alpha", "hppa"}, {"mipsel", "amd64"}, {"mips"}, set()]
    assert not_ok(cluster) == set()
    assert max(waited.values()) + 1 <= math.ceil(len(ARCHES) / 2)
    assert "mips" in (cluster.tmp / "www/index.html").read_text()


def test_dry_run_explains_and_queues_nothing(cluster: Cluster, redis_server: RedisServer) -> None:
    cluster.start_worker("w1", ",".join(ARCHES))
    cluster.submit("--arch", "alpha", "--wait")
    result = cluster.kbo("snapshot", "--dry-run", "--max-jobs", "1")
    assert result.returncode == 0, result.stderr
    assert "dry run: 1 jobs would be queued; nothing was" in result.stdout
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:7]}
    assert "OK at HEAD" in lines["alpha"]
    assert "never built" in lines["amd64"] and lines["amd64"].split()[4] == "1"
    assert "waits for capacity" in lines["hppa"]
    assert len(cluster.query("SELECT * FROM jobs")) == 1
    assert sum(redis_server.queue_length(f"build.{a}") for a in ARCHES) == 0


def test_concurrent_snapshots_submit_each_job_once(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    """No worker runs, so every queued message stays in Redis to be counted. Two
    snapshots on this host meet the lock; two with their own state directories (as from
    two hosts) meet at the coordinator."""
    commands = []
    for state in ("a", "a", "b", "c"):
        env = cluster.env | {"KBO_STATE_DIR": str(cluster.tmp / f"client-{state}")}
        commands.append(
            subprocess.Popen(
                [str(KBO), "snapshot"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [(p.wait(120), *p.communicate()) for p in commands]
    assert [status for status, _, _ in outputs] == [0, 0, 0, 0], outputs
    queued_now = [
        int(line.split()[4])
        for _, out, _ in outputs
        for line in out.splitlines()
        if line.startswith("run ")
    ]
    assert sum(queued_now) == len(ARCHES), outputs
    jobs = cluster.query(
        "SELECT arch, (SELECT COUNT(*) FROM attempts WHERE job_id = jobs.id) n FROM jobs"
    )
    assert sorted(row["arch"] for row in jobs) == ARCHES
    assert {row["n"] for row in jobs} == {1}
    assert sum(redis_server.queue_length(f"build.{a}") for a in ARCHES) == len(ARCHES)


def test_bad_input_fails_in_one_line_and_submits_nothing(tmp_path: Path) -> None:
    """Embedded mode, so the coordinator the snapshot starts sees these settings too."""
    cluster = Cluster(tmp_path, default_recipe="noop")

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KBO), "snapshot", *args],
            capture_output=True,
            text=True,
            env=cluster.env | env,
            timeout=120,
            check=False,
        )

    dead = free_port()
    cases = [
        ({"KBO_REPOSITORY": f"http://127.0.0.1:{dead}/linux.git"}, 3, "cannot fetch"),
        ({"KBO_REPOSITORY": str(tmp_path / "nowhere")}, 2, "does not exist"),
        ({"KBO_BRANCH": "no-such-branch"}, 2, "revision 'no-such-branch' does not exist"),
        (
            {"KBO_MAX_STALENESS": "alpha:soon"},
            2,
            "max_staleness must be a list of strings matching",
        ),
        ({"KBO_TRACKED_ARCHES": "alpha,vax"}, 2, "tracked arch 'vax' has no jobs"),
        ({"KBO_BROKER_URL": f"redis://127.0.0.1:{dead}/0"}, 3, "kbo: "),
    ]
    for env, status, message in cases:
        result = run(**env)
        assert result.returncode == status, (env, result.stderr)
        assert message in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    scheduled = run("--scheduled", KBO_SNAPSHOT_SCHEDULE="0 */6 * * *")
    assert scheduled.returncode == 2
    assert "snapshot_schedule is set, so the coordinator's beat runs snapshots" in scheduled.stderr
    assert run("--max-jobs", "0").returncode == 2
    assert cluster.query("SELECT * FROM runs") == []
    assert cluster.query("SELECT * FROM jobs") == []


def test_cron_environment(tmp_path: Path) -> None:
    """cron's bare environment: no HOME, PATH=/usr/bin:/bin, kbo by its absolute path.
    Embedded mode, so the snapshot starts its own coordinator and worker."""
    cluster = Cluster(tmp_path, default_recipe="noop", tracked_arches=["alpha", "hppa"])
    cron = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "LOGNAME": "root"}
    lost = subprocess.run(
        [str(KBO), "snapshot", "--scheduled"],
        capture_output=True,
        text=True,
        env=cron,
        timeout=60,
        check=False,
        cwd="/",
    )
    assert lost.returncode == 2
    assert lost.stderr.startswith("kbo: no repository configured") and lost.stderr.count("\n") == 1
    found = subprocess.run(
        [str(KBO), "snapshot", "--scheduled", "--config", str(cluster.config)],
        capture_output=True,
        text=True,
        env=cron,
        timeout=180,
        check=False,
        cwd="/",
    )
    assert found.returncode == 0, found.stderr
    assert "alpha_none_alpha-smp: succeeded" in found.stdout
    runs = cluster.query("SELECT reason, submitter FROM runs")
    assert [tuple(r) for r in runs] == [("scheduled", f"root@{os.uname().nodename}")]
    assert cluster.status().keys() == {"alpha", "hppa"}
    assert {s["state"] for s in cluster.status().values()} == {"OK"}


def test_beat_runs_snapshots_on_the_schedule(tmp_path: Path, redis_server: RedisServer) -> None:
    cluster = per_arch_cluster(tmp_path, redis_server, snapshot_schedule="1")
    try:
        cluster.start("coordinator", "coordinator", "--beat")
        cluster.start_worker("w1", "alpha,hppa,mips")
        wait_for(lambda: cluster.query("SELECT * FROM runs"), 60, "a snapshot from the beat")
        wait_for(lambda: not_ok(cluster) == set(), 60, "every tracked arch OK")
        runs = cluster.query("SELECT reason, submitter FROM runs")
        assert {r["reason"] for r in runs} == {"scheduled (beat)"}
        assert len(runs) == 1  # later beats find everything done at HEAD
        cluster.commit("B")
        wait_for(lambda: len(cluster.query("SELECT * FROM runs")) == 2, 30, "the next snapshot")
    finally:
        cluster.stop_all()


def test_a_snapshot_queues_the_digest_flagging_arches_over_their_limit(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    port = free_port()
    cluster = per_arch_cluster(
        tmp_path,
        redis_server,
        smtp_host="127.0.0.1",
        smtp_port=port,
        mail_to=["debian-kernel@example.org"],
        digest_hours=1,
        max_staleness=["hppa:1"],
    )
    try:
        with SmtpServer(port) as inbox:
            cluster.start_coordinator()
            cluster.start_worker("w1", "alpha,hppa,mips")
            snapshot(cluster, "--wait")
            first = wait_for(lambda: inbox.messages, 30, "the first digest")
            assert "3 of 3 tracked arches are not built" in body(first[0][1])
            cluster.commit("B")
            cluster.commit("C")
            db = sqlite3.connect(cluster.tmp / "state/kbo.sqlite")
            with db:  # the last digest was two hours ago
                db.execute("UPDATE outbox SET created_at = created_at - 7200")
            db.close()
            reply = snapshot(cluster, "--max-jobs", "1", "--wait")
            assert queued_arches(reply) == {"hppa"}  # over its limit, so it takes the room
            messages = wait_for(lambda: inbox.messages[1:], 30, "the second digest")
            subject, text = messages[0][1]["Subject"], body(messages[0][1])
            assert subject.endswith(
                "3 arches not built at " + reply["head"][:7] + ", 1 over max_staleness"
            )
            assert "OVER LIMIT: 2 commits behind, over max_staleness 1" in text
            snapshot(cluster, "--max-jobs", "1", "--wait")
            assert len(inbox.messages) == 2  # at most one digest per digest_hours
    finally:
        cluster.stop_all()


def test_commits_snapshotted_while_an_arch_is_busy_leave_one_build_at_head(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Five commits, each snapshotted while alpha's one worker builds an older one: each
    snapshot supersedes the job the one before queued, so alpha builds once more, at HEAD.
    The running build finishes and counts."""
    cluster = per_arch_cluster(tmp_path, redis_server, tracked_arches=["alpha"])
    try:
        cluster.start_coordinator()
        cluster.start_worker("w1", "alpha")
        (cluster.control / "sleep").write_text("8")
        busy = cluster.commit("change before")
        assert queued_arches(snapshot(cluster)) == {"alpha"}
        wait_for(
            lambda: cluster.query("SELECT 1 FROM attempts WHERE state = 'running'"),
            30,
            "alpha to build",
        )
        heads = []
        for i in range(5):
            heads.append(cluster.commit(f"change {i}"))
            assert queued_arches(snapshot(cluster)) == {"alpha"}
        (cluster.control / "sleep").unlink()
        wait_for(lambda: not_ok(cluster) == set(), 60, "alpha built at HEAD")
        time.sleep(2)  # the superseded jobs' messages reach the worker, which builds nothing
        jobs = cluster.query(
            "SELECT j.commit_sha, j.state, (SELECT COUNT(*) FROM attempts WHERE job_id = j.id"
            " AND started_at IS NOT NULL) AS started FROM jobs j ORDER BY j.id"
        )
        assert [(j["commit_sha"], j["state"], j["started"]) for j in jobs] == [
            (busy, "succeeded", 1),
            *((sha, "superseded", 0) for sha in heads[:4]),
            (heads[4], "succeeded", 1),
        ]
    finally:
        cluster.stop_all()


def test_a_job_that_failed_at_a_commit_is_not_built_again_by_later_snapshots(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    cluster = Cluster(tmp_path, broker_url=redis_server.url, tracked_arches=["alpha"])
    try:
        cluster.start_coordinator()
        cluster.start_worker("w1", "alpha")
        (cluster.control / "fail-alpha").touch()
        failing = cluster.kbo("snapshot", "--json", "--wait")
        assert failing.returncode == 1, failing.stderr
        first = json.loads(failing.stdout)
        assert {job["state"] for job in first["run"]["jobs"]} == {"failed"}
        again = snapshot(cluster, "--wait")
        assert again["run"] is None and queued_arches(again) == set()
        (alpha,) = again["decisions"]
        assert alpha["why"] == "failed at HEAD: not retried until a new commit (retry_failed)"
        assert [a["state"] for a in cluster.attempts()] == ["failed", "failed"]  # one per job
        assert cluster.status()["alpha"]["state"] == "FAILING"
        cluster.commit("B")
        (cluster.control / "fail-alpha").unlink()
        fixed = snapshot(cluster, "--wait")["run"]["jobs"]
        assert [job["state"] for job in fixed] == ["succeeded", "succeeded"]
    finally:
        cluster.stop_all()
