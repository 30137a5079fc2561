"""The ladder: each arch climbs cheap rungs before expensive ones, and a rung that fails
stops the rungs above it at that commit. Pure rules, then real `kbo snapshot` runs in
embedded mode (a coordinator and workers of its own) with three stand-in rungs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kbo.orchestrator import ladder
from tests.conftest import ROOT
from tests.services import Cluster

RUNGS = ["rung-config", "rung-smoke", "rung-package"]
SCOPES = {"rung-config": "flavour", "rung-smoke": "arch", "rung-package": "flavour"}


def test_an_arch_stands_on_its_first_rung_not_passed() -> None:
    assert ladder.rung_state(["succeeded", "succeeded"]) == ladder.PASSED
    assert ladder.rung_state(["succeeded", "failed", "running"]) == ladder.FAILED
    assert ladder.rung_state(["succeeded", "queued"]) == ladder.BUSY
    assert ladder.rung_state(["succeeded", None]) == ladder.TODO
    assert ladder.rung_state(["succeeded", "infra-error"]) == ladder.TODO  # built again
    assert ladder.rung_state([]) == ladder.TODO
    held = ladder.foothold([ladder.PASSED, ladder.FAILED, ladder.TODO])
    assert (held.rung, held.state, held.climbing) == (1, ladder.FAILED, False)
    assert ladder.foothold([ladder.PASSED] * 3) == ladder.Foothold(3, ladder.PASSED)
    assert (
        ladder.describe(RUNGS, [ladder.PASSED, ladder.BUSY, ladder.TODO])
        == "rung-config OK, rung-smoke building"
    )


def ladder_cluster(tmp_path: Path) -> Cluster:
    """Embedded mode with three stand-in rungs; a file control/<rung>/fail-<arch> makes
    that rung fail for that arch like a compiler error."""
    script, control = ROOT / "tests/recipes/scripted.sh", tmp_path / "control"
    recipes = tmp_path / "ladder-recipes"
    recipes.mkdir()
    for rung in RUNGS:
        (recipes / f"{rung}.toml").write_text(
            f'description = "stand-in rung"\nscope = "{SCOPES[rung]}"\ntimeout = 120\n'
            f'no_output_timeout = 120\nhost_paths = ["{script.parent}", "{control}"]\n'
            f'[[step]]\nname = "build"\n'
            f'argv = ["/bin/sh", "{script}", "{control / rung}", "{{arch}}"]\n'
        )
    cluster = Cluster(
        tmp_path, ladder=RUNGS, recipe_dirs=[str(recipes)], fold_seconds=0, mail_to=["k@x"]
    )
    for rung in RUNGS:
        (control / rung).mkdir()
    return cluster


def jobs_at(cluster: Cluster, commit: str) -> dict[tuple[str, str], list[str]]:
    """(arch, recipe) -> the states of its jobs at ``commit``."""
    found: dict[tuple[str, str], list[str]] = {}
    for row in cluster.query(
        "SELECT arch, recipe, state FROM jobs WHERE commit_sha = ? ORDER BY id", commit
    ):
        found.setdefault((row["arch"], row["recipe"]), []).append(row["state"])
    return found


def snapshot(cluster: Cluster) -> tuple[int, dict[str, Any]]:
    result = cluster.kbo("snapshot", "--json", timeout=300)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_a_config_break_stops_alpha_at_the_first_rung_and_mails_at_once(tmp_path: Path) -> None:
    cluster = ladder_cluster(tmp_path)
    (cluster.control / "rung-config" / "fail-alpha").touch()
    status, reply = snapshot(cluster)
    assert status == 1
    head = reply["head"]
    jobs = jobs_at(cluster, head)
    assert set(jobs[("alpha", "rung-config")]) == {"failed"}
    assert ("alpha", "rung-smoke") not in jobs and ("alpha", "rung-package") not in jobs
    for arch in ("hppa", "mips"):  # they went on up the ladder
        assert all(set(jobs[(arch, rung)]) == {"succeeded"} for rung in RUNGS), (arch, jobs)
    # The failure was queued for mail as the rung's first job failed, not at the end.
    (mail,) = cluster.query("SELECT kind, data, created_at FROM outbox")
    assert mail["kind"] == "failure"
    first_fail = cluster.query(
        "SELECT MIN(a.ended_at) FROM attempts a JOIN jobs j ON j.id = a.job_id"
        " WHERE j.arch = 'alpha' AND a.state = 'failed'"
    )[0][0]
    assert mail["created_at"] - first_fail < 5
    text = cluster.kbo("status").stdout
    alpha = next(line for line in text.splitlines() if line.startswith("alpha "))
    assert "(rung-config FAILING)" in alpha
    hppa = next(line for line in text.splitlines() if line.startswith("hppa "))
    assert hppa.split()[1] == "OK"
    doc = cluster.status()
    assert [r["state"] for r in doc["alpha"]["ladder"]] == ["failed", "todo", "todo"]


def test_a_compile_break_stops_alpha_at_the_second_rung(tmp_path: Path) -> None:
    cluster = ladder_cluster(tmp_path)
    (cluster.control / "rung-smoke" / "fail-alpha").touch()
    started = time.monotonic()
    status, reply = snapshot(cluster)
    assert status == 1, reply
    jobs = jobs_at(cluster, reply["head"])
    assert set(jobs[("alpha", "rung-config")]) == {"succeeded"}
    assert jobs[("alpha", "rung-smoke")] == ["failed"]
    assert ("alpha", "rung-package") not in jobs
    assert set(jobs[("mips", "rung-package")]) == {"succeeded"}
    # Cheap rungs first: every rung-config job was queued before any rung-smoke one.
    order = cluster.query("SELECT recipe FROM jobs ORDER BY id")
    recipes = [row[0] for row in order]
    assert recipes.index("rung-smoke") > max(i for i, r in enumerate(recipes) if r == "rung-config")
    assert time.monotonic() - started < 240
    # Run again: nothing left to do at HEAD, nothing queued.
    again = cluster.kbo("snapshot", "--dry-run", "--json")
    assert again.returncode == 0, again.stderr
    plan = json.loads(again.stdout)
    assert plan["recipe"] == "rung-config > rung-smoke > rung-package"
    alpha = next(d for d in plan["decisions"] if d["arch"] == "alpha")
    assert alpha["jobs"] == [] and "rung-smoke failed at HEAD" in alpha["why"]


def test_a_snapshot_that_climbs_every_rung_exits_zero_and_status_is_ok(tmp_path: Path) -> None:
    cluster = ladder_cluster(tmp_path)
    status, reply = snapshot(cluster)
    assert status == 0, reply
    assert all(d["state"] == "OK" and d["recipe"] == "rung-package" for d in reply["decisions"])
    assert cluster.kbo("status").returncode == 0


def test_a_ladder_of_one_rung_is_followed_to_its_end(tmp_path: Path) -> None:
    cluster = ladder_cluster(tmp_path)
    text = cluster.config.read_text().replace(
        'ladder = ["rung-config", "rung-smoke", "rung-package"]', 'ladder = ["rung-smoke"]'
    )
    cluster.config.write_text(text)
    (cluster.control / "rung-smoke" / "fail-alpha").touch()
    status, reply = snapshot(cluster)
    assert status == 1, reply
    assert [r["recipe"] for r in reply["runs"]] == ["rung-smoke"]
    states = {job["arch"]: job["state"] for job in reply["runs"][0]["jobs"]}
    assert states == {"alpha": "failed", "hppa": "succeeded", "mips": "succeeded"}
