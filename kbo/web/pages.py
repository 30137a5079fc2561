"""The dashboard: HTML pages for people, beside the JSON API.

``/`` the grid of tracked arches x flavours (state colour, commits behind, time stale,
the first error of a failing one, links to the newest attempt's log and the job's
history), ``/runs/{run}`` a run's jobs, ``/jobs/{job}/history`` the newest attempts at
a job's key, ``/attempts/{id}/log`` a log with its first error marked
(``#first-error``). Server-rendered with Jinja2 (autoescaped); ``static/dashboard.js``
fetches the page again every few seconds and swaps in its live parts, so a page stays
current without reloading and without a JavaScript build step. Every page is sent with
a Content-Security-Policy that allows only kbo's own script and style sheet.

With ``read_access = "token"``, a browser signs in at ``/login`` with a token; it is
kept in an HttpOnly, SameSite=Strict cookie (Secure behind HTTPS), never in a URL.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from kbo import recipes
from kbo.config import Config
from kbo.errors import KboError, UserError
from kbo.orchestrator.staleness import Standing
from kbo.orchestrator.state import Attempt, Job
from kbo.orchestrator.state.records import HOST_PROBLEMS
from kbo.orchestrator.state.tokens import TokenInfo, identify
from kbo.packaging import repository
from kbo.text import NAME, mask_passwords, one_line
from kbo.web import files
from kbo.web.api import JOB_ID, RUN_ID
from kbo.web.auth import config_of, reading
from kbo.web.board import Board, Boards

HERE = Path(__file__).parent
COOKIE = "kbo_token"
POLL_SECONDS = 3
HISTORY = 20
MAX_LOG_SHOWN = 4 << 20  # characters of a log shown on its page; the raw log has it all
ERROR_CONTEXT = 40  # lines shown before a first error found past that
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)
Settings = Annotated[Config, Depends(config_of)]


class LoginNeeded(Exception):
    """A page asked for without the token ``read_access = "token"`` needs."""


def age(seconds: float | None) -> str:
    """The largest whole unit: 3d, 5h, 12m, 40s."""
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


templates.filters["age"] = age
templates.filters["when"] = when


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    config: Config = request.app.state.config
    body = templates.get_template(template).render(
        signed_in=config.read_access == "token", **context
    )
    return HTMLResponse(body, status_code=status_code, headers=HEADERS)


def missing(request: Request, what: str) -> HTMLResponse:
    """An id that names nothing: a page saying so, never a traceback."""
    return page(request, "missing.html", 404, title="Not found", what=what)


def reader(request: Request, config: Settings) -> TokenInfo | None:
    """Who reads: anyone when ``read_access`` is public, else the token of the cookie
    ``/login`` set; without one, the browser is sent there."""
    if config.read_access == "public":
        return None
    token = request.cookies.get(COOKIE)
    if token:
        with reading(config) as state:
            found = identify(state, token)
        if found is not None:
            return found
    raise LoginNeeded


Reader = Annotated[TokenInfo | None, Depends(reader)]


async def login_needed(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", 303, headers=HEADERS)


def _next(value: str | None) -> str:
    """Where to go after signing in: a path of this site only."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


# -- the grid -------------------------------------------------------------------------


def _cell(board: Board, flavour: Standing, now: float) -> dict[str, Any]:
    arch, featureset, name = flavour.name.split("/")
    newest = board.newest.get((arch, featureset, name))
    attempt = newest.attempt if newest else None
    ended = attempt is not None and attempt.state not in ("queued", "running")
    log = f"/attempts/{attempt.id}/log" if attempt and attempt.log_path and ended else None
    problem = flavour.host_problem
    return {
        "id": f"cell-{arch}-{featureset}-{name}",
        "label": name if featureset == "none" else f"{featureset}/{name}",
        "state": flavour.state,
        "behind": flavour.commits_behind,
        "stale": None if flavour.stale_since is None else now - flavour.stale_since,
        "first_error": flavour.first_error if flavour.state == "FAILING" else None,
        "problem": problem.state if problem else None,
        "problem_error": (problem.error or problem.state) if problem else None,
        "cancelled": flavour.cancelled,
        "job": newest.job if newest else None,
        "job_state": newest.job.state if newest else None,
        "log": log,
        "history": f"/jobs/{newest.job.id}/history" if newest else None,
    }


def _grid(board: Board, now: float) -> list[dict[str, Any]]:
    unserved = board.report.unserved
    rows = []
    for arch in board.report.arches:
        problem = arch.host_problem
        rows.append(
            {
                "name": arch.name,
                "state": arch.state,
                "behind": arch.commits_behind,
                "stale": None if arch.stale_since is None else now - arch.stale_since,
                "no_worker": arch.name in unserved,
                "problem": problem.state if problem else None,
                "cells": [_cell(board, f, now) for f in arch.flavours],
            }
        )
    return rows


@router.get("/", response_class=HTMLResponse)
def grid(
    request: Request,
    config: Settings,
    _: Reader,
    recipe: Annotated[str | None, Query(pattern=f"^{NAME}$", max_length=64)] = None,
) -> Response:
    chosen = recipe or config.status_recipe
    try:
        recipes.scope_of(chosen, config.recipe_dirs)
    except UserError as e:
        return missing(request, str(e))
    boards: Boards = request.app.state.boards
    try:
        board = boards.get(chosen)
    except KboError as e:  # no repository yet, git or the database failing: say so
        what = one_line(mask_passwords(str(e)))  # a repository URL may hold a token
        return page(request, "missing.html", 503, title="Unavailable", what=what)
    now = time.time()

    def render() -> bytes:
        html = page(
            request,
            "grid.html",
            title=f"kbo: {config.branch}",
            config=config,
            recipe=chosen,
            head=board.report.head,
            rows=_grid(board, now),
            runs=board.runs,
            now=now,
            poll=POLL_SECONDS,
        ).body
        return bytes(html)

    return HTMLResponse(board.each_second("grid", now, render), headers=HEADERS)


# -- runs and jobs --------------------------------------------------------------------


@router.get("/runs/{run}", response_class=HTMLResponse)
def run(request: Request, config: Settings, _: Reader, run: str) -> Response:
    if not RUN_ID.fullmatch(run.lower()):
        return missing(request, "no such run: a run id is a UUID, as `kbo submit` prints it")
    with reading(config) as state:
        summary = state.run(run.lower())
    if summary is None:
        return missing(request, f"no run {run.lower()}")
    now = time.time()
    jobs = []
    for entry in summary.jobs:
        attempt, told = entry.attempt, entry.ending or entry.attempt
        started = attempt.started_at if attempt else None
        ended_at = attempt.ended_at if attempt else None
        jobs.append(
            {
                "job": entry.job,
                "state": entry.job.state,
                "stage": attempt.stage if attempt and attempt.state == "running" else None,
                "worker": attempt.worker if attempt else None,
                "attempts": entry.attempts,
                "took": None if started is None else (ended_at or now) - started,
                "first_error": told.first_error if told else None,
                "log": f"/attempts/{told.id}/log" if told and told.log_path else None,
                "ended": entry.ended,
            }
        )
    live = not all(j["ended"] for j in jobs)
    return page(
        request,
        "run.html",
        title=f"kbo: run {summary.run.id[:8]}",
        run=summary.run,
        jobs=jobs,
        poll=POLL_SECONDS if live else None,
        now=now,
    )


@router.get("/jobs/{job}/history", response_class=HTMLResponse)
def history(request: Request, config: Settings, _: Reader, job: str) -> Response:
    if not JOB_ID.fullmatch(job):
        return missing(request, "no such job: its id is a number")
    with reading(config) as state:
        found = state.job(int(job))
        tries = [] if found is None else state.history_of_key(found, HISTORY)
    if found is None:
        return missing(request, f"no job {job}")
    authors = _authors(config, found, [j.commit for j, _ in tries])
    now = time.time()
    rows = [
        {
            "job": j,
            "attempt": a,
            "author": authors.get(j.commit, ("", ""))[0],
            "subject": authors.get(j.commit, ("", ""))[1],
            "took": _took(a, now),
            "log": f"/attempts/{a.id}/log" if a.log_path else None,
        }
        for j, a in tries
    ]
    live = any(a.state in ("queued", "running") for _, a in tries)
    return page(
        request,
        "history.html",
        title=f"kbo: {found.key} history",
        job=found,
        rows=rows,
        poll=POLL_SECONDS if live else None,
    )


def _authors(config: Config, job: Job, commits: list[str]) -> dict[str, tuple[str, str]]:
    """Each commit's author and subject, from the tracked repository as last fetched
    (a job of another source names none)."""
    if not config.repository or job.source != repository.source_id(config.repository):
        return {}
    try:
        repo = repository.local_repository(config.repository, config, fetch=False)
        return repository.authors(repo, sorted(set(commits)))
    except UserError:
        return {}


def _took(attempt: Attempt, now: float) -> float | None:
    if attempt.started_at is None:
        return None
    return (attempt.ended_at or now) - attempt.started_at


# -- logs ------------------------------------------------------------------------------


def clip(line: str) -> str:
    """A log line as the worker records a first error: stripped, unprintable characters
    as "?", cut to 400 characters (kbo/workers/first_error.py)."""
    line = "".join(ch if ch.isprintable() else "?" for ch in line.strip())
    return line if len(line) <= 400 else line[:399] + "…"


def _lines(path: Path) -> Iterator[str]:
    pending = b""
    for chunk in files.gunzipped(path):
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for line in whole:
            yield line.decode("utf-8", errors="replace") + "\n"
    if pending:
        yield pending.decode("utf-8", errors="replace")


def split_log(lines: Iterator[str], first_error: str | None) -> dict[str, Any]:
    """The log as its page shows it: the text before the first error, the first error's
    line, the text after; at most ``MAX_LOG_SHOWN`` characters of it, and when the
    first error comes past that, the lines just before it."""
    before: list[str] = []
    after: list[str] = []
    shown = 0
    error: str | None = None
    skipped = False
    recent: deque[str] = deque(maxlen=ERROR_CONTEXT)
    for line in lines:
        if error is None and first_error and clip(line) == first_error:
            error = line.rstrip("\n")
            if skipped:
                before += ["…\n", *recent]
            continue
        if shown + len(line) > MAX_LOG_SHOWN:
            skipped = True
            if error is not None:
                break
            recent.append(line)
            continue
        shown += len(line)
        (before if error is None else after).append(line)
    return {
        "before": "".join(before),
        "error": error,
        "after": "".join(after),
        "cut": skipped,
    }


@router.get("/attempts/{attempt}/log", response_class=HTMLResponse)
def log(request: Request, config: Settings, _: Reader, attempt: str) -> Response:
    if not JOB_ID.fullmatch(attempt):
        return missing(request, "no such attempt: its id is a number")
    with reading(config) as state:
        found = state.attempt(int(attempt))
        job = None if found is None else state.job(found.job_id)
    path = None if found is None else files.log_file(config, found)
    if found is None or job is None or path is None:
        return missing(request, f"no log kept for attempt {attempt}")
    shown = split_log(_lines(path), found.first_error)
    return page(
        request,
        "log.html",
        title=f"kbo: {job.key} attempt {found.number} log",
        job=job,
        attempt=found,
        raw=f"/api/attempts/{found.id}/log",
        host_problem=found.state in HOST_PROBLEMS,
        **shown,
    )


# -- signing in -----------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return page(request, "login.html", title="kbo: sign in", next=_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, config: Settings) -> Response:
    """Take a token from the form; kept in an HttpOnly cookie the pages read."""
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _next((form.get("next") or ["/"])[0])
    with reading(config) as state:
        found = identify(state, token) if token else None
    if found is None:
        return page(
            request,
            "login.html",
            401,
            title="kbo: sign in",
            next=target,
            error="unknown or revoked token",
        )
    answer = RedirectResponse(target, 303, headers=HEADERS)
    answer.set_cookie(
        COOKIE,
        token,
        max_age=30 * 86400,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@router.post("/logout")
def logout() -> Response:
    answer = RedirectResponse("/login", 303, headers=HEADERS)
    answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return answer
