"""The hosts' failures are told apart from the commit's, against real redis-server,
`kbo coordinator`, `kbo worker` and SMTP (aiosmtpd) processes: a mirror that is down, or
a worker that cannot set up the build, ends the job infra-error after its retries; the
arch is not FAILING, the admins see it in `kbo status`, the status page and the digest,
and no author is mailed."""

from __future__ import annotations

import http.server
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import git
from tests.services import Cluster, RedisServer, free_port, wait_for
from tests.test_mail import SmtpServer, body

RECIPES = {
    # Needs the commit's source: the orig tarball comes from the mirror first of all.
    "fetch-source": 'scope = "arch"\nneeds_source = true\nexecutors = ["none"]\n',
    # This host builds alpha only with cross: the executor cannot be set up.
    "native-only": 'scope = "arch"\nexecutors = ["native"]\n',
}


class Unavailable(http.server.BaseHTTPRequestHandler):
    """A mirror in the middle of a sync: 503 for everything, each request counted."""

    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_error(503, "mirror sync in progress")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror() -> Iterator[str]:
    Unavailable.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer, mirror: str) -> Iterator[Cluster]:
    recipes = tmp_path / "infra-recipes"
    recipes.mkdir()
    for name, head in RECIPES.items():
        (recipes / f"{name}.toml").write_text(f'{head}[[step]]\nargv = ["true"]\n')
    port = free_port()
    cluster = Cluster(
        tmp_path / "kbo",
        broker_url=redis_server.url,
        mirror=mirror,
        recipe_dirs=[str(recipes)],
        default_recipe="fetch-source",
        infra_retries=2,
        retry_seconds=1,
        smtp_host="127.0.0.1",
        smtp_port=port,
        mail_to=["admins@example.org"],
        mail_authors=1,
        fold_seconds=1,
        status_page=str(tmp_path / "status.html"),
    )
    cluster.smtp_port = port  # type: ignore[attr-defined]
    cluster.start_coordinator()
    cluster.start_worker("w1", "alpha")
    yield cluster
    cluster.stop_all()


def test_a_mirror_that_is_down_ends_infra_error_after_its_retries_and_mails_no_author(
    cluster: Cluster, tmp_path: Path
) -> None:
    with SmtpServer(cluster.smtp_port) as inbox:  # type: ignore[attr-defined]
        started = time.monotonic()
        run = cluster.submit("--arch", "alpha", "--wait", timeout=120)
        (job,) = run["jobs"]
        assert (job["state"], job["attempts"]) == ("infra-error", 3)
        assert "linux_6.1.176.orig.tar.xz: download failed: 503 Server Error" in job["first_error"]
        # Each attempt reported at once (not lost to a lapsed lease), retried after 1 s
        # then 2 s by the sweep, and the mirror was asked each time.
        attempts = cluster.attempts()
        assert [a["state"] for a in attempts] == ["infra-error"] * 3
        assert len(Unavailable.requests) == 3
        assert time.monotonic() - started < 60

        alpha = cluster.status()["alpha"]
        assert alpha["state"] == "NEVER"  # not FAILING: the commit is not to blame
        assert alpha["failing_commit"] is None
        problem = alpha["host_problem"]
        assert (problem["state"], problem["retry_at"], problem["infra_errors"]) == (
            "infra-error",
            None,
            3,
        )
        assert "download failed: 503" in problem["error"]
        assert problem["worker"] == "w1@test"

        text = cluster.kbo("status", "--flavours")
        assert text.returncode == 1
        header, *rows = text.stdout.split("\n\n")[1].splitlines()
        assert header.split()[-2:] == ["HOST", "PROBLEM"]
        column = header.index("HOST PROBLEM")
        problems = {r.split()[0]: r[column:].strip() for r in rows}
        assert problems == {
            "alpha": "infra-error",
            "alpha/none/alpha-smp": "infra-error",
            "hppa": "no worker",  # w1 serves alpha alone
            "hppa/none/parisc": "-",
            "mips": "no worker",
            "mips/none/4kc-malta": "-",
        }
        assert "alpha not built at HEAD, the hosts' doing (never mailed to authors):" in (
            text.stdout
        )
        assert "alpha/none/alpha-smp: infra-error on w1@test (no retry left, 3 so far)" in (
            text.stdout
        )
        assert "orig.tar.xz: download failed: 503 Server Error" in text.stdout

        page = wait_for(
            lambda: (
                (tmp_path / "status.html").exists()
                and "infra-error" in (page := (tmp_path / "status.html").read_text())
                and page
            ),
            10,
            "the status page",
        )
        assert "NEVER; infra-error" in page and "download failed: 503" in page

        time.sleep(3)  # past fold_seconds: a failure report would be due by now
        assert inbox.messages == []
        assert cluster.query("SELECT * FROM outbox") == []

        assert cluster.kbo("digest").returncode == 0  # for the admins (mail_to)
        wait_for(lambda: inbox.messages, 30, "the digest")
        (recipients, digest), *_ = inbox.messages
        assert recipients == ["admins@example.org"]
        assert "alpha/none/alpha-smp: infra-error: http://127.0.0.1:" in body(digest)
        assert "download failed: 503" in body(digest)


def test_a_worker_that_cannot_set_up_the_build_is_retried_and_reported_at_once(
    cluster: Cluster,
) -> None:
    run = cluster.submit("--recipe", "native-only", "--arch", "alpha", "--wait", timeout=120)
    (job,) = run["jobs"]
    assert job["state"] == "infra-error"
    assert job["first_error"].startswith("worker w1@test cannot build alpha with recipe")
    attempts = cluster.attempts()
    assert [a["state"] for a in attempts] == ["infra-error"] * 3
    # Reported at once, not when a lease lapsed: each attempt ended within a second or
    # two of its start (leases here are 4 s), the retries waited 1 s, then 2 s.
    assert all(a["ended_at"] - a["started_at"] < 3 for a in attempts)
    gaps = [b["started_at"] - a["ended_at"] for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 1 and gaps[1] >= 2, gaps
    assert cluster.query("SELECT * FROM outbox") == []  # nothing for anyone, authors least
    status = cluster.kbo("status", "--json", "--recipe", "native-only")
    alpha = {a["name"]: a for a in json.loads(status.stdout)["arches"]}["alpha"]
    assert alpha["state"] == "NEVER" and alpha["host_problem"]["state"] == "infra-error"


def test_a_job_waiting_for_build_depends_names_them_in_status(tmp_path: Path) -> None:
    """dep-wait as the coordinator records it (the worker's side is in test_outcomes.py:
    a real one needs a prepared kernel tree), read by real `kbo status` processes."""
    from kbo.config import load_config
    from kbo.orchestrator.retries import RetryPolicy
    from kbo.orchestrator.state import JobSpec, Run, State
    from kbo.packaging import repository

    cluster = Cluster(tmp_path)
    head = git_head(cluster)
    config = load_config(str(cluster.config))
    state = State(config.database, RetryPolicy.of(config))
    source = repository.source_id(str(cluster.repo))
    run = Run("r1", "me", "", source, "main", head, "test-script", "6.1.176-1")
    specs = [JobSpec(source, head, "test-script", "alpha", "none", f) for f in FLAVOURS]
    generic, smp = state.record_run(run, specs)
    for attempt in (generic, smp):
        assert state.claim(attempt, "t", "w1@test", "h", 60).accepted
    state.finish(generic, "t", {"outcome": "succeeded"})
    missing = "missing Build-Depends: gcc-12-alpha-linux-gnu, kernel-wedge"
    state.finish(smp, "t", {"outcome": "dep-wait", "first_error": missing})
    state.close()

    text = cluster.kbo("status", "--flavours")
    assert text.returncode == 1, text.stderr
    assert "alpha/none/alpha-smp: dep-wait on w1@test (retried in 31m)" in text.stdout
    assert f"    {missing}" in text.stdout
    alpha = {a["name"]: a for a in json.loads(cluster.kbo("status", "--json").stdout)["arches"]}
    assert alpha["alpha"]["state"] == "NEVER"
    assert alpha["alpha"]["host_problem"]["state"] == "dep-wait"
    assert alpha["alpha"]["host_problem"]["error"] == missing
    assert alpha["alpha"]["host_problem"]["retry_at"] > time.time() + 1800


FLAVOURS = ("alpha-generic", "alpha-smp")


def git_head(cluster: Cluster) -> str:
    return git(cluster.repo, "rev-parse", "HEAD")


@pytest.mark.parametrize("stage", ["prepare", "executor", "step", "check artifacts"])
def test_an_exception_in_any_stage_ends_infra_error_at_once_and_mails_no_author(
    tmp_path: Path, redis_server: RedisServer, stage: str
) -> None:
    """An exception kbo did not expect (injected through tests/inject/sitecustomize.py
    into the worker's process alone) ends the attempt infra-error, named in one line and
    reported at once, not when its lease lapses; nothing is queued for mail."""
    cluster = Cluster(tmp_path, broker_url=redis_server.url, infra_retries=0)
    try:
        cluster.start_coordinator()
        plain_env = cluster.env
        cluster.env = plain_env | {
            "PYTHONPATH": str(Path(__file__).parent / "inject"),
            "KBO_TEST_RAISE_AT": stage,
        }
        cluster.start_worker("w1", "alpha")
        cluster.env = plain_env
        run = cluster.submit("--arch", "alpha", "--flavour", "alpha-smp", "--wait", timeout=60)
        (job,) = run["jobs"]
        assert job["state"] == "infra-error", job
        assert job["first_error"].startswith("internal error: RuntimeError: injected as the stage")
        (attempt,) = cluster.attempts()
        assert attempt["ended_at"] - attempt["started_at"] < 3  # leases here are 4 s
        assert cluster.query("SELECT * FROM outbox") == []
        assert cluster.status()["alpha"]["state"] != "FAILING"
    finally:
        cluster.stop_all()
