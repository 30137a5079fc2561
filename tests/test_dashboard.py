"""The dashboard of `kbo web` as a person uses it: Debian's chromium, headless through
/usr/bin/chromedriver, watches a build of alpha fail while hppa succeeds, follows the
failing cell to its log and finds the first error marked; and the pages' contract read
over HTTP (their Content-Security-Policy, 404 pages, signing in with a token)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.browser import chromium, state_of
from tests.services import RedisServer, wait_for
from tests.test_web import Web, web_cluster

# Where the browser test saves its screenshot of the dashboard (the README shows
# docs/dashboard.png: KBO_DASHBOARD_SCREENSHOT=docs/dashboard.png pytest ... refreshes it).
SCREENSHOT = os.environ.get("KBO_DASHBOARD_SCREENSHOT")
ALPHA_ERROR = "arch/alpha/kernel/setup.c:42:7: error: 'boot_cpu_data' undeclared"


@pytest.fixture
def web(tmp_path: Path, redis_server: RedisServer) -> Iterator[Web]:
    web = Web(*web_cluster(tmp_path, redis_server))
    web.start()
    yield web
    web.cluster.stop_all()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path) as driver:
        yield driver


def run_of(web: Web, run_id: str) -> dict[str, Any]:
    found: dict[str, Any] = web.call("GET", f"/api/runs/{run_id}").json()
    return found


def test_the_dashboard_follows_alpha_failing_to_its_first_error_without_reloading(
    web: Web, browser: Any
) -> None:
    cluster = web.cluster
    cluster.start_coordinator()
    cluster.start_worker("w-alpha", "alpha")
    cluster.start_worker("w-hppa", "hppa")
    (cluster.control / "sleep").write_text("1")
    good = web.submit(arches=["alpha", "hppa"], reason="before the break").json()
    wait_for(lambda: all(j["ended"] for j in run_of(web, good["id"])["jobs"]), 60, "a good run")
    (cluster.control / "fail-alpha").touch()
    broken = cluster.commit("alpha: use boot_cpu_data before it is declared")

    browser.get(web.url + "/")
    cell = "#cell-alpha-none-alpha-smp"
    wait_for(lambda: state_of(browser, cell) == "STALE" or browser.refresh(), 20, "STALE")
    assert "kbo" in browser.title
    browser.execute_script("window.kboNotReloaded = true;")

    run = web.submit(arches=["alpha", "hppa"], reason="the dashboard's test").json()
    wait_for(lambda: state_of(browser, cell) == "FAILING", 60, "the alpha cell to turn FAILING")
    assert browser.execute_script("return window.kboNotReloaded === true;")  # no reload
    wait_for(
        lambda: (
            browser.find_element("css selector", "#arch-hppa td.arch").get_attribute("data-state")
            == "OK"
        ),
        60,
        "hppa to be OK",
    )
    assert browser.execute_script("return window.kboNotReloaded === true;")
    alpha = browser.find_element("css selector", cell)
    assert ALPHA_ERROR in (alpha.get_attribute("title") or "")
    assert state_of(browser, "#arch-mips td.arch") == "NEVER"
    runs = browser.find_element("css selector", "ul.runs").text
    assert "the dashboard's test" in runs and broken[:12] in runs
    if SCREENSHOT:
        # The README's picture: the first error opened, as a person would look at it.
        alpha.find_element("css selector", "details summary").click()
        browser.save_screenshot(SCREENSHOT)

    alpha.find_element("css selector", "a.log").click()
    wait_for(lambda: "/attempts/" in browser.current_url, 20, "the log page")
    assert browser.current_url.endswith("/log#first-error")
    marked = browser.find_element("id", "first-error")
    assert marked.tag_name == "mark" and ALPHA_ERROR in marked.text
    assert "first-error" in (marked.get_attribute("class") or "")
    jump = browser.find_element("link text", "Jump to the first error")
    assert jump.get_attribute("href").endswith("#first-error")
    visible = browser.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= window.innerHeight;",
        marked,
    )
    assert visible  # the link from the grid lands on it
    browser.save_screenshot(str(web.cluster.tmp / "log.png"))

    browser.get(f"{web.url}/runs/{run['id']}")
    rows = browser.find_elements("css selector", "table.jobs tbody tr")
    assert {r.find_elements("tag name", "td")[1].text for r in rows} == {"failed", "succeeded"}
    assert "Every job of this run has ended." in browser.page_source
    browser.find_element("link text", "history").click()
    wait_for(lambda: "/history" in browser.current_url, 20, "the history page")
    history = browser.find_element("css selector", "table.history tbody").text
    assert broken[:12] in history and good["commit_sha"][:12] in history
    assert "Kernel Maintainer" in history  # the commit's author
    assert "Traceback" not in cluster.log("web")


def test_pages_carry_a_strict_csp_and_unknown_ids_are_404_pages(web: Web) -> None:
    home = requests.get(web.url + "/", timeout=30)
    assert home.status_code == 200 and home.headers["Content-Type"].startswith("text/html")
    csp = home.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "<script" in home.text and "onclick" not in home.text
    assert 'src="/static/dashboard.js"' in home.text
    script = requests.get(web.url + "/static/dashboard.js", timeout=30)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    for path in (
        "/runs/0b6e0e5e-0000-4000-8000-000000000000",
        "/runs/..%2F..%2Fetc",
        "/jobs/999/history",
        "/jobs/1e3/history",
        "/attempts/1/log",
        "/attempts/-1/log",
        "/attempts/..%2Fkbo.sqlite/log",
        "/?recipe=nosuchrecipe",
    ):
        answer = requests.get(web.url + path, timeout=30)
        assert answer.status_code == 404, (path, answer.text[:200])
        assert answer.headers["Content-Type"].startswith("text/html"), path
        assert "Traceback" not in answer.text
    assert "Traceback" not in web.cluster.log("web")


def test_the_log_page_escapes_the_log_and_marks_its_first_error(web: Web) -> None:
    cluster = web.cluster
    cluster.start_coordinator()
    cluster.start_worker("w-alpha", "alpha")
    (cluster.control / "fail-alpha").touch()
    run = web.submit(arches=["alpha"], flavours=["alpha-smp"]).json()
    wait_for(
        lambda: all(j["ended"] for j in web.call("GET", f"/api/runs/{run['id']}").json()["jobs"]),
        60,
        "the run to end",
    )
    (attempt,) = cluster.attempts()
    page = requests.get(f"{web.url}/attempts/{attempt['id']}/log", timeout=30).text
    marked = '<mark id="first-error" class="first-error">'
    assert marked + ALPHA_ERROR.replace("'", "&#39;") in page
    assert page.index("  CC      arch/alpha/kernel/setup.o") < page.index(marked)
    assert 'href="#first-error"' in page
    grid = requests.get(web.url + "/", timeout=30).text
    assert f'href="/attempts/{attempt["id"]}/log#first-error"' in grid


def test_with_read_access_token_a_browser_signs_in_with_an_httponly_cookie(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    cluster, port = web_cluster(tmp_path, redis_server, read_access="token")
    web = Web(cluster, port)
    try:
        web.start()
        session = requests.Session()
        first = session.get(web.url + "/jobs/1/history", timeout=30, allow_redirects=False)
        assert first.status_code == 303
        assert first.headers["Location"] == "/login?next=%2Fjobs%2F1%2Fhistory"
        form = session.get(web.url + first.headers["Location"], timeout=30)
        assert form.status_code == 200 and 'name="token"' in form.text
        wrong = session.post(
            web.url + "/login", data={"token": "kbo_wrong", "next": "/"}, timeout=30
        )
        assert wrong.status_code == 401 and "unknown or revoked token" in wrong.text
        signed = session.post(
            web.url + "/login",
            data={"token": web.token, "next": "//evil.example/"},
            timeout=30,
            allow_redirects=False,
        )
        assert signed.status_code == 303 and signed.headers["Location"] == "/"
        cookie = signed.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and web.token in cookie
        assert session.get(web.url + "/", timeout=30).status_code == 200
        assert session.get(web.url + "/jobs/1/history", timeout=30).status_code == 404
        # The API still wants its Authorization header: a cookie is the pages' alone.
        assert session.get(web.url + "/api/runs", timeout=30).status_code == 401
        cluster.kbo("token", "revoke", "alice")
        again = session.get(web.url + "/", timeout=30, allow_redirects=False)
        assert again.status_code == 303
        assert web.token not in cluster.log("web")
    finally:
        cluster.stop_all()


def test_the_status_document_is_kept_until_head_or_the_database_changes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    from kbo.config import load_config
    from kbo.web import board

    cluster, _ = web_cluster(tmp_path, redis_server)
    boards = board.Boards(load_config(str(cluster.config)))
    first = boards.get("test-script")
    assert boards.get("test-script") is first  # within CHECK_SECONDS: not even looked at
    boards._kept["test-script"].checked -= board.CHECK_SECONDS
    assert boards.get("test-script") is first  # nothing changed
    new_head = cluster.commit("another commit")
    boards._kept["test-script"].checked -= board.CHECK_SECONDS
    assert boards.get("test-script").report.head == new_head


def test_the_screenshot_the_readme_shows_is_small() -> None:
    from tests.conftest import ROOT

    shot = ROOT / "docs" / "dashboard.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size < 200_000
    assert "docs/dashboard.png" in (ROOT / "README.md").read_text()


def test_the_grid_says_in_a_page_when_the_standings_cannot_be_read(tmp_path: Path) -> None:
    import asyncio

    import httpx

    from kbo.config import Config
    from kbo.web.app import create_app

    app = create_app(Config(state_dir=str(tmp_path / "state"), repository=""))

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kbo") as client:
            return await client.get("/")

    answer = asyncio.run(get())
    assert answer.status_code == 503 and answer.headers["Content-Type"].startswith("text/html")
    assert "no repository configured" in answer.text and "Traceback" not in answer.text


def test_a_long_log_shows_its_start_and_the_lines_before_a_late_first_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kbo.web import pages

    monkeypatch.setattr(pages, "MAX_LOG_SHOWN", 100)
    lines = [f"line {n}\n" for n in range(1000)]
    lines[700] = "  drivers/x.c:7:1: error: <script>alert(1)</script>  \n"
    shown = pages.split_log(iter(lines), pages.clip(lines[700]))
    assert shown["error"] == lines[700].rstrip("\n") and shown["cut"]
    assert shown["before"].startswith("line 0\n") and "line 699\n" in shown["before"]
    assert "line 500\n" not in shown["before"] and shown["after"] == ""
    whole = pages.split_log(iter(lines[:5]), None)
    assert (whole["before"], whole["error"], whole["cut"]) == ("".join(lines[:5]), None, False)
