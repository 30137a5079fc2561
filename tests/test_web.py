"""`kbo web` as a real uvicorn process on a free port, in front of a real redis-server,
`kbo coordinator` and `kbo worker`: tokens and roles, submissions that record the
token's name, retry and cancel, refusals in one line, and the CLI as its client from a
directory with no state database."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import KBO
from tests.services import Cluster, RedisServer, free_port, wait_for


class Web:
    """A cluster with `kbo web` started on it, and a maintainer's token."""

    def __init__(self, cluster: Cluster, port: int) -> None:
        self.cluster = cluster
        self.url = f"http://127.0.0.1:{port}"
        self.token = self.add_token("alice", "maintainer")

    def add_token(self, name: str, role: str) -> str:
        result = self.cluster.kbo("token", "add", name, "--role", role)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def start(self) -> None:
        self.cluster.start("web", "web")
        wait_for(self._up, 30, "kbo web")

    def _up(self) -> bool:
        try:
            return requests.get(self.url + "/openapi.json", timeout=2).ok
        except requests.ConnectionError:
            return False

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url + path, headers=headers, timeout=90, **kwargs)

    def submit(self, **body: Any) -> requests.Response:
        return self.call("POST", "/api/runs", self.token, json=body)

    def client(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        """`kbo ARGS --server URL` from a directory with no config and no state database,
        the token from KBO_TOKEN only."""
        home = self.cluster.tmp / "maintainer"
        home.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KBO_")}
        env |= {"HOME": str(home), "XDG_STATE_HOME": str(home / "state")}
        env["KBO_TOKEN"] = self.token if token is None else token
        return subprocess.run(
            [str(KBO), *args, "--server", self.url],
            capture_output=True,
            text=True,
            env=env,
            cwd=home,
            timeout=120,
            check=False,
        )


def web_cluster(tmp: Path, redis_server: RedisServer, **settings: Any) -> tuple[Cluster, int]:
    port = free_port()
    return Cluster(tmp, broker_url=redis_server.url, web_port=port, **settings), port


@pytest.fixture
def web(tmp_path: Path, redis_server: RedisServer) -> Iterator[Web]:
    web = Web(*web_cluster(tmp_path, redis_server))
    web.start()
    yield web
    web.cluster.stop_all()


def ended(web: Web, run_id: str) -> dict[str, Any]:
    def look() -> dict[str, Any] | None:
        run = web.call("GET", f"/api/runs/{run_id}").json()
        return run if all(j["ended"] for j in run["jobs"]) else None

    found: dict[str, Any] = wait_for(look, 60, "the run to end")
    return found


def test_a_maintainers_submission_builds_and_records_the_tokens_name(web: Web) -> None:
    web.cluster.start_coordinator()
    web.cluster.start_worker("w-alpha", "alpha")
    answer = web.submit(arches=["alpha"], flavours=["alpha-smp"], reason="from afar")
    assert answer.status_code == 201, answer.text
    run = answer.json()
    assert (run["submitter"], run["reason"]) == ("alice", "from afar")
    (job,) = ended(web, run["id"])["jobs"]
    assert job["state"] == "succeeded"
    assert web.cluster.query("SELECT submitter FROM runs")[0][0] == "alice"
    listed = web.call("GET", "/api/runs").json()["runs"]
    assert [r["id"] for r in listed] == [run["id"]]

    attempts = web.call("GET", f"/api/jobs/{job['id']}/attempts").json()["attempts"]
    (attempt,) = attempts
    assert attempt["state"] == "succeeded" and attempt["worker"] == "w-alpha@test"
    assert attempt["executor"] and attempt["duration_seconds"] >= 0
    log = web.call("GET", attempt["log"], headers={"Accept-Encoding": "gzip"}, stream=True)
    assert log.status_code == 200 and log.headers["Content-Encoding"] == "gzip"
    stored = Path(web.cluster.query("SELECT log_path FROM attempts")[0][0]).read_bytes()
    assert log.raw.read() == stored  # passed through as stored, not compressed again
    plain = web.call("GET", attempt["log"], headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert plain.content == gzip.decompress(stored)
    artifacts = web.call("GET", f"/api/jobs/{job['id']}/artifacts").json()
    assert artifacts["job"] == job["id"] and isinstance(artifacts["artifacts"], list)


def test_a_submitter_named_in_the_body_is_refused_not_recorded(web: Web) -> None:
    answer = web.submit(arches=["alpha"], submitter="mallory@evil")
    assert (answer.status_code, answer.json()) == (422, {"detail": "submitter: unknown field"})
    assert web.cluster.query("SELECT * FROM runs") == []


def test_tokens_and_roles_are_checked_before_anything_is_sent(web: Web) -> None:
    cancel = "/api/jobs/1/cancel"
    none = web.call("POST", cancel)
    assert none.status_code == 401 and none.headers["WWW-Authenticate"] == "Bearer"
    assert web.call("POST", cancel, "kbo_not-a-token").status_code == 401
    assert web.call("POST", cancel, web.token).status_code == 404  # let in: no job 1

    from kbo.orchestrator.state import State, tokens

    state = State(web.cluster.tmp / "state" / "kbo.sqlite")
    worker = tokens.add(state, "w-alpha", "worker", ("alpha",))
    state.close()
    refused = web.call("POST", cancel, worker)
    assert refused.json() == {"detail": "w-alpha is a worker: only maintainer or admin"}
    assert refused.status_code == 403

    listed = web.cluster.kbo("token", "list", "--json")
    assert [(t["name"], t["role"], t["revoked_at"]) for t in json.loads(listed.stdout)] == [
        ("alice", "maintainer", None),
        ("w-alpha", "worker", None),
    ]
    assert web.token not in listed.stdout
    revoked = web.cluster.kbo("token", "revoke", "alice")
    assert (revoked.returncode, revoked.stdout) == (0, "alice: token revoked\n")
    assert web.call("POST", cancel, web.token).status_code == 401
    again = web.cluster.kbo("token", "revoke", "alice")
    assert again.returncode == 2 and again.stderr == "kbo: alice has no live token\n"
    assert web.token not in web.cluster.log("web")
    bad = web.cluster.kbo("token", "add", "../etc", "--role", "admin")
    assert bad.returncode == 2 and bad.stderr.startswith("kbo: '../etc' is not a token name")
    busy = web.cluster.kbo("web")  # its port is taken by the one running
    assert busy.returncode == 3
    assert busy.stderr.splitlines()[-1] == f"kbo: kbo web could not serve on {web.url[7:]}"


def test_bad_requests_are_refused_in_one_line(web: Web) -> None:
    def refused(answer: requests.Response) -> tuple[int, str]:
        detail = answer.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail
        return answer.status_code, detail

    assert refused(web.submit(arches=["alpha"], colour="red")) == (422, "colour: unknown field")
    bad_json = web.call("POST", "/api/runs", web.token, data=b"{bad", headers=JSON)
    assert refused(bad_json) == (422, "the body is not valid JSON")
    status, detail = refused(web.submit(arches=["../etc"]))
    assert status == 422 and detail.startswith("arches.0: String should match pattern")
    assert refused(web.submit(arches=["sparc99"])) == (422, "arches: unknown architecture sparc99")
    huge = web.call("POST", "/api/runs", web.token, data=b"x" * (65 << 10), headers=JSON)
    assert refused(huge) == (413, "the request body is over 64 KiB")
    outside = web.submit(source="https://example.org/evil/linux.git")
    assert refused(outside) == (
        403,
        "source https://example.org/evil/linux.git is not among the allowed repositories "
        "(allowed_repositories)",
    )
    dots = web.submit(source=f"{web.cluster.repo}/../../etc")
    assert refused(dots)[0] == 403
    for path in (
        "/api/runs/0b6e0e5e-0000-4000-8000-000000000000",
        "/api/runs/..%2F..%2Fetc%2Fpasswd",
        "/api/runs/%2e%2e",
        "/api/jobs/999/attempts",
        "/api/jobs/..%2F1/attempts",
        "/api/jobs/1e3/artifacts",
        "/api/attempts/1/log",
        "/api/attempts/..%2F..%2Fkbo.sqlite/log",
        "/api/attempts/-1/log",
    ):
        answer = web.call("GET", path)
        assert answer.status_code == 404, (path, answer.text)
    assert "Traceback" not in web.cluster.log("web")


JSON = {"Content-Type": "application/json"}


def test_retry_and_cancel_go_to_the_coordinator_as_the_verbs_send_them(web: Web) -> None:
    web.cluster.start_coordinator()  # no worker: the job stays queued
    run = web.submit(arches=["alpha"], flavours=["alpha-smp"]).json()
    (job,) = run["jobs"]
    queued = web.call("POST", f"/api/jobs/{job['id']}/retry", web.token)
    assert queued.status_code == 409
    assert queued.json()["detail"].startswith(f"job {job['id']} is queued: only a job that ended")
    cancelled = web.call("POST", f"/api/jobs/{job['id']}/cancel", web.token).json()
    assert [(j["id"], j["was"]) for j in cancelled["cancelled"]] == [(job["id"], "queued")]
    (attempt,) = web.cluster.attempts()
    assert attempt["state"] == "cancelled" and attempt["first_error"] == "cancelled by alice"
    retried = web.call("POST", f"/api/jobs/{job['id']}/retry", web.token)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["attempt"], retried.json()["retried_by"]) == (2, "alice")
    whole = web.call("POST", f"/api/runs/{run['id']}/cancel", web.token).json()
    assert [j["id"] for j in whole["cancelled"]] == [job["id"]] and whole["left"] == []


def test_reading_needs_a_token_when_read_access_is_token(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    cluster, port = web_cluster(tmp_path, redis_server, read_access="token")
    web = Web(cluster, port)
    try:
        web.start()
        assert web.call("GET", "/api/runs").status_code == 401
        assert web.call("GET", "/api/runs", web.token).json() == {"runs": []}
        assert web.call("GET", "/api/workers", "kbo_wrong").status_code == 401
    finally:
        cluster.stop_all()


def test_the_cli_submits_and_reads_through_the_server_with_its_exit_statuses(
    web: Web,
) -> None:
    web.cluster.start_coordinator()
    web.cluster.start_worker("w-alpha", "alpha")
    submitted = web.client("submit", "--arch", "alpha", "--flavour", "alpha-smp", "--wait")
    assert submitted.returncode == 0, submitted.stderr
    assert ", by alice (manual)" in submitted.stdout
    status = web.client("status", "--json")
    assert status.returncode == 1, status.stderr  # hppa and mips were never built
    arches = {a["name"]: a for a in json.loads(status.stdout)["arches"]}
    assert arches["hppa"]["state"] == "NEVER" and arches["hppa"]["no_worker"] is True
    text = web.client("status")
    assert text.returncode == 1 and text.stdout.startswith(f"{web.url} main at ")
    job = web.cluster.query("SELECT id FROM jobs")[0][0]
    retry = web.client("retry", str(job))
    assert retry.returncode == 2
    assert retry.stderr.startswith(f"kbo: {web.url}: job {job} succeeded: only a job that")
    assert retry.stderr.count("\n") == 1
    cancel = web.client("cancel", str(job))
    assert (cancel.returncode, cancel.stderr) == (
        2,
        f"kbo: job {job} succeeded: nothing to cancel\n",
    )
    for result in (submitted, status, text, retry, cancel):
        assert web.token not in result.stdout + result.stderr


def test_the_cli_as_client_fails_in_one_line_without_a_token_or_a_server(web: Web) -> None:
    refused = web.client("submit", "--arch", "alpha", token="")
    assert (refused.returncode, refused.stderr) == (
        2,
        f"kbo: {web.url}: a token is needed (Authorization: Bearer TOKEN) (HTTP 401)\n",
    )
    wrong = web.client("cancel", "1", token="kbo_wrong")
    assert wrong.returncode == 2 and "unknown or revoked token (HTTP 401)" in wrong.stderr
    web.cluster.stop_all()
    gone = web.client("status")
    assert gone.returncode == 3
    assert gone.stderr.startswith(f"kbo: cannot reach {web.url}: ") and gone.stderr.count("\n") == 1
    assert "Traceback" not in gone.stderr and web.token not in gone.stderr


def asgi(app: Any, body_chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> list[Any]:
    """Call an ASGI app once, as a server would; the messages it sent."""
    import asyncio

    sent: list[Any] = []
    chunks = list(body_chunks)

    async def receive() -> dict[str, Any]:
        body = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/runs", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent


def test_the_last_line_answers_a_generic_500_and_logs_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kbo.web.guards import LastLine

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("the secret detail\nand a second line")

    start, body = asgi(LastLine(broken), [], [])
    assert start["status"] == 500
    assert json.loads(body["body"]) == {"detail": "internal error in kbo web (logged)"}
    (record,) = caplog.records
    assert record.getMessage().startswith("internal error on POST /api/runs: RuntimeError: ")
    assert record.exc_info is None  # no traceback


def test_a_body_without_a_length_is_cut_off_at_the_limit() -> None:
    from kbo.web.guards import BodyLimit

    async def reader(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        raise AssertionError("the whole body was read")

    start, body = asgi(BodyLimit(reader, limit=1000), [b"x" * 600] * 3, [])
    assert start["status"] == 413
    assert json.loads(body["body"]) == {"detail": "the request body is over 1000 bytes"}
