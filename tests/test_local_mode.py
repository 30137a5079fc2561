"""Embedded mode: one command, no server, the same code path as with Redis."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.conftest import KBO
from tests.services import Cluster


def test_submit_wait_and_status_with_no_server(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        run = cluster.submit("--arch", "alpha,hppa,mips", "--wait")
        assert run["succeeded"] is True
        assert len(run["jobs"]) == 7
        assert {job["executor"] for job in run["jobs"]} == {"cross"}
        assert (tmp_path / "state" / "broker").is_dir()
        status = cluster.status()
        assert {name: arch["state"] for name, arch in status.items()} == {
            "alpha": "OK",
            "hppa": "OK",
            "mips": "OK",
        }
        cluster.commit("Bump ABI")
        assert {arch["state"] for arch in cluster.status().values()} == {"STALE"}
        assert cluster.kbo("status").returncode == 1
    finally:
        cluster.stop_all()


def test_status_page_is_a_grid_readable_without_javascript(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        (cluster.control / "fail-hppa").touch()
        cluster.submit("--arch", "alpha,hppa", "--wait")
        page = tmp_path / "www" / "index.html"
        assert cluster.kbo("status", "--html", page).returncode == 1
        html = page.read_text()
        assert "<script" not in html
        assert "<th>alpha</th>" in html and "<th>hppa</th>" in html and "<th>mips</th>" in html
        assert "none/alpha-smp: OK (0 behind)" in html
        assert "none/parisc: FAILING" in html
        assert "none/octeon: NEVER" in html
        assert html.count("#c62828") >= 2  # FAILING's colour: the arch and its flavours
    finally:
        cluster.stop_all()


def test_a_repository_url_is_mirrored_by_the_coordinator(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        url = f"file://{cluster.repo}"
        run = cluster.submit(url, "--rev", "main", "--arch", "mips", "--reason", "cron snapshot")
        assert run["source"] == url
        assert (run["rev"], run["reason"]) == ("main", "cron snapshot")
        assert run["submitter"].startswith(("root@", f"{__import__('getpass').getuser()}@"))
        mirrors = list((tmp_path / "state" / "repos").glob("*.git"))
        assert len(mirrors) == 1
    finally:
        cluster.stop_all()


def test_an_embedded_dry_run_plans_without_services_and_writes_nothing(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        assert cluster.submit("--arch", "alpha", "--wait")["succeeded"] is True
        coordinator_log = tmp_path / "state" / "logs" / "coordinator.log"
        starts = coordinator_log.read_text().count(" ready.")
        before = cluster.query("SELECT COUNT(*) FROM runs")[0][0]
        result = cluster.kbo("snapshot", "--dry-run")
        assert result.returncode == 0, result.stderr
        lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:5]}
        assert "OK at HEAD" in lines["alpha"]
        assert "never built" in lines["hppa"] and "never built" in lines["mips"]
        assert "dry run: 5 jobs would be queued; nothing was"  # hppa 2, mips 3 in result.stdout
        assert cluster.query("SELECT COUNT(*) FROM runs")[0][0] == before
        assert coordinator_log.read_text().count(" ready.") == starts  # none started
    finally:
        cluster.stop_all()


def test_status_blames_the_first_failing_commit_with_its_error_and_log(tmp_path: Path) -> None:
    """An unrelated commit lands on top of the breaking one, and fails too: FAILING AT
    still names the breaking commit, with its first error and where its log is."""
    cluster = Cluster(tmp_path)
    try:
        assert cluster.submit("--arch", "hppa", "--wait")["succeeded"] is True
        (cluster.control / "fail-hppa").touch()
        breaking = cluster.commit("Break hppa")
        cluster.submit("--arch", "hppa", "--wait")
        cluster.commit("Unrelated: fix a typo in the changelog")
        cluster.submit("--arch", "hppa", "--wait")
        hppa = cluster.status()["hppa"]
        assert (hppa["state"], hppa["failing_commit"]) == ("FAILING", breaking)
        assert "'boot_cpu_data' undeclared" in hppa["first_error"]
        assert Path(hppa["log"]).is_file()
        text = cluster.kbo("status").stdout
        assert f"hppa failing since {breaking[:12]}:" in text
        assert f"log: {hppa['log']}" in text
    finally:
        cluster.stop_all()


def test_waiting_on_a_terminal_shows_a_live_table_with_each_job_s_stage(tmp_path: Path) -> None:
    """Under a terminal (script(1) gives the command one), --wait redraws a table of the
    jobs with the stage each worker reported; piped, it prints a line per change."""
    cluster = Cluster(tmp_path)
    try:
        (cluster.control / "sleep").write_text("4")
        command = f"{KBO} submit --arch alpha --flavour alpha-smp --wait"
        shown = subprocess.run(
            ["script", "-qec", command, "/dev/null"],
            capture_output=True,
            text=True,
            env=cluster.env,
            timeout=180,
            check=False,
        )
        assert shown.returncode == 0, shown.stdout
        assert "JOB" in shown.stdout and "STAGE" in shown.stdout and "RAN" in shown.stdout
        assert "step build" in shown.stdout  # the stage, reported while it ran
        assert "\x1b[" in shown.stdout  # redrawn in place
        piped = cluster.kbo("submit", "--arch", "alpha", "--flavour", "alpha-smp", "--wait")
        assert "\x1b[" not in piped.stdout + piped.stderr
    finally:
        cluster.stop_all()


def test_a_truncated_database_is_refused_at_once_not_after_a_minute(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        assert cluster.submit("--arch", "alpha", "--wait")["succeeded"] is True
        database = tmp_path / "state" / "kbo.sqlite"
        for leftover in ("kbo.sqlite-wal", "kbo.sqlite-shm"):
            (tmp_path / "state" / leftover).unlink(missing_ok=True)
        database.write_bytes(b"")
        for verb in (("snapshot",), ("submit", "--arch", "alpha", "--wait"), ("status",)):
            started = time.monotonic()
            result = cluster.kbo(*verb)
            assert result.returncode == 2, (verb, result.stderr)
            assert result.stderr.count("\n") == 1, result.stderr
            assert f"{database}: refusing the state database: the file is empty" in result.stderr
            assert time.monotonic() - started < 20, verb
        assert database.read_bytes() == b""  # refused, never taken for a new database
    finally:
        cluster.stop_all()
