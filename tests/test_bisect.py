"""Bisection end to end: real coordinator, worker and redis-server processes, a real git
history of Debian packaging, and a real SMTP server (aiosmtpd). The stand-in recipe is
told per commit how alpha's build ends (``tests/recipes/scripted.sh``)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.services import Cluster, RedisServer, free_port, wait_for
from tests.test_mail import SmtpServer, body, commit_as

AUTHORS = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra"]
CULPRIT = "Mallory Breaker"


def bisect_cluster(tmp_path: Path, redis_url: str, **settings: Any) -> Cluster:
    """A cluster whose recipe passes the commit to the stand-in, one job per arch."""
    recipes = tmp_path / "bisect-recipes"
    recipes.mkdir()
    script, control = ROOT / "tests/recipes/scripted.sh", tmp_path / "control"
    (recipes / "bisect-script.toml").write_text(
        'description = "stand-in told per commit how to end"\nscope = "arch"\n'
        "timeout = 120\nno_output_timeout = 120\n"
        f'host_paths = ["{script.parent}", "{control}"]\n'
        '[[step]]\nname = "build"\n'
        f'argv = ["/bin/sh", "{script}", "{control}", "{{arch}}", "{{commit}}"]\n'
    )
    port = free_port()
    cluster = Cluster(
        tmp_path,
        broker_url=redis_url,
        default_recipe="bisect-script",
        recipe_dirs=[str(recipes)],
        smtp_host="127.0.0.1",
        smtp_port=port,
        mail_to=["debian-kernel@example.org"],
        fold_seconds=1,
        mail_authors=1,
        **({"bisect_max_steps": 8} | settings),
    )
    cluster.smtp_port = port  # type: ignore[attr-defined]
    cluster.start_coordinator()
    cluster.start_worker("w1", "alpha,hppa,mips")
    return cluster


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    cluster = bisect_cluster(tmp_path, redis_server.url)
    yield cluster
    cluster.stop_all()


def history(cluster: Cluster, broken_at: int = 5) -> list[str]:
    """Eight commits after the last good build; alpha fails from ``broken_at`` on."""
    commits = []
    for n in range(1, 9):
        author = CULPRIT if n == broken_at else AUTHORS[n % len(AUTHORS)]
        commits.append(commit_as(cluster, author, f"commit {n}: changes by {author.split()[0]}"))
    for sha in commits[broken_at - 1 :]:
        (cluster.control / f"fail-alpha-{sha}").touch()
    return commits


def snapshot(cluster: Cluster) -> None:
    result = cluster.kbo("snapshot", "--wait", "--json", timeout=240)
    assert result.returncode in (0, 1), result.stderr + cluster.log("coordinator")


def alpha_jobs(cluster: Cluster) -> dict[str, str]:
    rows = cluster.query("SELECT commit_sha, state FROM jobs WHERE arch = 'alpha'")
    return {r["commit_sha"]: r["state"] for r in rows}


def test_the_failure_mail_waits_for_its_bisection_and_names_the_commit_that_broke_alpha(
    cluster: Cluster,
) -> None:
    with SmtpServer(cluster.smtp_port) as inbox:  # type: ignore[attr-defined]
        snapshot(cluster)  # the last good build of every arch
        last_good = cluster.query("SELECT commit_sha FROM runs")[0][0]
        commits = history(cluster)
        started = time.monotonic()
        snapshot(cluster)  # one snapshot at HEAD: alpha fails, hppa and mips build
        wait_for(lambda: inbox.messages, 90, "the failure mail")
        elapsed = time.monotonic() - started
        time.sleep(3)
        assert len(inbox.messages) == 1, inbox.subjects()
        recipients, message = inbox.messages[0]
        head, culprit = commits[-1], commits[4]
        assert message["Subject"] == (
            f"[kbo] 6.1.176-1: alpha/none/alpha-smp FAILED at {head[:7]}, "
            f"first bad commit {culprit[:7]}"
        )
        text = body(message)
        assert "First bad commit (bisected in 3 builds over the 8 commits since" in text
        assert f"  {culprit}\n  author:  {CULPRIT} <mallory@example.org>" in text
        assert "  subject: commit 5: changes by Mallory" in text
        assert "first error there: arch/alpha/kernel/setup.c:42:7: error:" in text
        # Only the culprit's author is blamed, not the seven other suspects' authors.
        assert set(recipients) == {"debian-kernel@example.org", "mallory@example.org"}

    built = alpha_jobs(cluster)
    steps = {sha: built[sha] for sha in commits[:-1] if sha in built}
    assert steps == {commits[3]: "succeeded", commits[5]: "failed", commits[4]: "failed"}
    assert len(steps) <= 4  # ceil(log2(8)) + 1
    # hppa and mips are unaffected: built at the last good commit and at HEAD only.
    others = cluster.query("SELECT arch, commit_sha FROM jobs WHERE arch != 'alpha'")
    assert sorted((r[0], r[1]) for r in others) == sorted(
        (arch, sha) for arch in ("hppa", "mips") for sha in (last_good, commits[-1])
    )
    (row,) = cluster.query("SELECT state, steps, culprit, mail_id FROM bisections")
    assert tuple(row) == ("found", 3, culprit, 1)
    print(f"bisection to the failure mail: {elapsed:.1f} s")


def test_a_commit_failing_another_way_is_skipped_and_named(
    cluster: Cluster,
) -> None:
    with SmtpServer(cluster.smtp_port) as inbox:  # type: ignore[attr-defined]
        snapshot(cluster)
        commits = history(cluster)
        (cluster.control / f"other-alpha-{commits[5]}").touch()  # commit 6: a Kconfig error
        snapshot(cluster)
        wait_for(lambda: inbox.messages, 90, "the failure mail")
        time.sleep(3)
        assert len(inbox.messages) == 1, inbox.subjects()
        text = body(inbox.messages[0][1])
        assert f"  {commits[4]}\n  author:  {CULPRIT} <mallory@example.org>" in text
        assert (
            f"skipped (another first error, or not built for the hosts' sake): {commits[5][:12]}"
        ) in text
    (row,) = cluster.query("SELECT state, culprit, skipped FROM bisections")
    assert (row[0], row[1], json.loads(row[2])) == ("found", commits[4], [commits[5]])


def test_kbo_bisect_by_hand_shows_in_status_and_mails_the_culprit(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    cluster = bisect_cluster(tmp_path, redis_server.url, bisect_max_steps=0)
    try:
        with SmtpServer(cluster.smtp_port) as inbox:  # type: ignore[attr-defined]
            snapshot(cluster)
            commits = history(cluster, broken_at=3)
            snapshot(cluster)
            wait_for(lambda: inbox.messages, 60, "the failure mail")
            assert "first bad commit" not in inbox.messages[0][1]["Subject"]
            assert cluster.query("SELECT * FROM bisections") == []  # none started by itself
            (job,) = cluster.query(
                "SELECT id FROM jobs WHERE arch = 'alpha' AND commit_sha = ?", commits[-1]
            )
            (cluster.control / "sleep").write_text("2")  # time to see it running
            started = cluster.kbo("bisect", str(job[0]), "--json")
            assert started.returncode == 0, started.stderr
            shown = json.loads(started.stdout)
            assert (shown["state"], shown["commits"], shown["started"]) == ("running", 8, True)
            assert "running" in started.stderr and "building" in started.stderr
            status = json.loads(cluster.kbo("status", "--json").stdout)
            assert [b["name"] for b in status["bisections"]] == ["alpha_none_alpha-smp"]
            assert "bisecting (`kbo bisect JOB` shows one):" in cluster.kbo("status").stdout
            again = cluster.kbo("bisect", str(job[0]), "--json")  # starts nothing new
            assert again.returncode == 0 and json.loads(again.stdout)["started"] is False

            wait_for(lambda: len(inbox.messages) == 2, 90, "the culprit mail")
            message = inbox.messages[1][1]
            assert message["Subject"] == (
                f"[kbo] 6.1.176-1: alpha/none/alpha-smp first bad commit {commits[2][:7]}"
            )
            assert message["X-Kbo-State"] == "BISECTED"
            assert f"  {commits[2]}\n  author:  {CULPRIT}" in body(message)
            assert json.loads(cluster.kbo("status", "--json").stdout)["bisections"] == []
            shown = json.loads(cluster.kbo("bisect", str(job[0]), "--json").stdout)
            assert (shown["state"], shown["culprit"]) == ("found", commits[2])

            hppa = cluster.query("SELECT id FROM jobs WHERE arch = 'hppa'")[0][0]
            refused = cluster.kbo("bisect", str(hppa))
            assert refused.returncode == 2
            assert "only a failed job is bisected" in refused.stderr
    finally:
        cluster.stop_all()


def test_a_bisection_a_dead_coordinator_left_running_ends_at_the_next_start(
    cluster: Cluster,
) -> None:
    with SmtpServer(cluster.smtp_port) as inbox:  # type: ignore[attr-defined]
        snapshot(cluster)
        commits = history(cluster)
        snapshot(cluster)
        wait_for(lambda: inbox.messages, 90, "the failure mail")
        # As if the coordinator died after the last step's result, before the verdict.
        cluster.kill("coordinator")
        db = sqlite3.connect(cluster.tmp / "state" / "kbo.sqlite")
        with db:
            db.execute("UPDATE bisections SET state = 'running', culprit = NULL, ended_at = NULL")
        db.close()
        cluster.start_coordinator()
        wait_for(lambda: len(inbox.messages) == 2, 60, "the culprit mail")
        assert inbox.messages[1][1]["Subject"].endswith(f"first bad commit {commits[4][:7]}")
    (row,) = cluster.query("SELECT state, steps, culprit FROM bisections")
    assert tuple(row) == ("found", 3, commits[4])  # no build made twice


def test_flavours_failing_alike_share_one_mail_and_one_bisection(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # The default test recipe: one job per flavour, and the stand-in fails alike at every
    # commit, so the bisection names the oldest commit after the last good build.
    port = free_port()
    cluster = Cluster(
        tmp_path,
        broker_url=redis_server.url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        mail_to=["debian-kernel@example.org"],
        fold_seconds=3,
        bisect_max_steps=8,
    )
    try:
        cluster.start_coordinator()
        cluster.start_worker("w1", "alpha", "--slots", "2")
        with SmtpServer(port) as inbox:
            assert cluster.submit("--arch", "alpha", "--wait")["succeeded"]
            commits = [commit_as(cluster, AUTHORS[n % 4], f"commit {n}") for n in range(1, 5)]
            (cluster.control / "fail-alpha").touch()
            run = cluster.submit("--arch", "alpha", "--wait")
            flavours = {job["flavour"] for job in run["jobs"]}
            assert len(flavours) > 1
            wait_for(lambda: inbox.messages, 90, "the failure mail")
            time.sleep(3)
            assert len(inbox.messages) == 1, inbox.subjects()
            message = inbox.messages[0][1]
            assert message["Subject"].endswith(f"first bad commit {commits[0][:7]}")
            assert set(message["X-Kbo-Flavour"].split(", ")) == flavours
        assert len(cluster.query("SELECT id FROM bisections")) == 1
    finally:
        cluster.stop_all()
