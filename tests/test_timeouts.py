"""Timeouts from history: the rule as data, the claim field checked as input, and a
hung build stopped at the limit its job key's earlier builds set (real coordinator,
worker and redis-server processes, the stand-in recipe)."""

from __future__ import annotations

import copy
import gzip
import time
from pathlib import Path

import pytest

from kbo.orchestrator.timeouts import from_history, p95
from kbo.workers.claim import MAX_TIMEOUT, BadClaim, checked_claim
from tests.services import RedisServer
from tests.test_bisect import bisect_cluster
from tests.test_claim import REPLY
from tests.test_mail import commit_as


def recipe_limit(executor: str) -> int:
    return 3600 * (12 if executor == "qemu" else 1)


def test_three_builds_set_three_times_their_p95_per_executor() -> None:
    durations = [("qemu", 1000.0), ("native", 10.0), ("qemu", 1200.0), ("qemu", 900.0)]
    assert from_history(durations, 10, 60, recipe_limit) == {
        "qemu": {
            "seconds": 3600,
            "why": "3 x the p95 (1200 s) of the last 3 successful qemu builds of this job "
            "key, at least 60 s (timeout_min_seconds); the recipe allows 43200 s",
        }
    }  # native has one build only: the recipe's timeout applies


def test_only_the_newest_builds_count_and_the_floor_and_recipe_bound_it() -> None:
    newest_first = [("cross", 10.0)] * 3 + [("cross", 5000.0)] * 5
    assert from_history(newest_first, 3, 60, recipe_limit)["cross"]["seconds"] == 60
    assert from_history(newest_first, 8, 60, recipe_limit) == {}  # 15000 s > the recipe's
    assert from_history(newest_first, 0, 60, recipe_limit) == {}
    assert p95([float(n) for n in range(1, 101)]) == 95.0


def test_the_claim_s_timeouts_are_checked_as_input() -> None:
    good = copy.deepcopy(REPLY) | {"timeouts": {"qemu": {"seconds": 600, "why": "history"}}}
    assert checked_claim(good).timeouts == {"qemu": (600, "history")}
    assert checked_claim(copy.deepcopy(REPLY)).timeouts == {}  # an older coordinator
    for bad, says in [
        ({"qemu": {"seconds": 0, "why": "x"}}, "is not a whole number of seconds"),
        ({"qemu": {"seconds": MAX_TIMEOUT + 1, "why": "x"}}, "is not a whole number"),
        ({"qemu": {"seconds": True, "why": "x"}}, "is not a whole number"),
        ({"qemu": {"seconds": 60, "why": "\x1b[2J"}}, "is not one line of text"),
        ({"qemu": {"seconds": 60}}, "is not seconds and why"),
        ({"../x": {"seconds": 60, "why": "x"}}, "is not an executor"),
        (["qemu", 60], "is not a dict of executors"),
    ]:
        with pytest.raises(BadClaim, match="timeouts") as refused:
            checked_claim(copy.deepcopy(REPLY) | {"timeouts": bad})
        assert says in str(refused.value)


def test_after_three_builds_a_hung_build_is_stopped_at_the_limit_they_set(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    cluster = bisect_cluster(tmp_path, redis_server.url, timeout_min_seconds=3)
    try:
        for n in range(3):  # three builds of alpha's job key, about 1 s each
            sha = commit_as(cluster, "Ada Lovelace", f"commit {n}")
            (cluster.control / f"sleep-{sha}").write_text("1")
            assert cluster.submit("--arch", "alpha", "--wait")["succeeded"]
        logs = sorted((tmp_path / "state/logs/alpha_none_alpha-smp").glob("*.log.gz"))
        first = gzip.decompress(logs[0].read_bytes()).decode()
        assert "kbo: timeout: 120 s per step, the recipe's: no history" in first

        hung = commit_as(cluster, "Ada Lovelace", "hangs the build")
        (cluster.control / f"sleep-{hung}").write_text("100")
        started = time.monotonic()
        run = cluster.submit("--arch", "alpha", "--wait", timeout=100)
        took = time.monotonic() - started
        (job,) = run["jobs"]
        assert job["state"] == "failed"
        assert took < 30, took  # not the recipe's 120 s
        (attempt,) = cluster.query(
            "SELECT a.id, a.first_error FROM attempts a JOIN jobs j ON j.id = a.job_id"
            " WHERE j.commit_sha = ?",
            hung,
        )
        assert attempt["first_error"].startswith("step build timed out after ")
        text = gzip.decompress(
            (tmp_path / f"state/logs/alpha_none_alpha-smp/{attempt['id']}.log.gz").read_bytes()
        ).decode()
        assert "from history: 3 x the p95" in text
        assert "of the last 3 successful" in text and "the recipe allows 120 s" in text
        assert "kbo: killed after the total timeout of" in text
    finally:
        cluster.stop_all()
