"""The JSON API under ``/api``: what `kbo status`, `submit`, `retry`, `cancel` and
`workers` show and do, for clients away from the coordinator's host."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel

from kbo import arches, recipes
from kbo.config import Config
from kbo.errors import UserError
from kbo.orchestrator import documents
from kbo.orchestrator.state import Attempt, Job
from kbo.orchestrator.state.tokens import TokenInfo
from kbo.text import NAME
from kbo.web import files
from kbo.web.auth import config_of, maintainer, may_read, reading
from kbo.web.models import SubmitBody
from kbo.web.relay import Refused, Relay
from kbo.web.sources import check_source

RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
GLOB_CHARACTERS = set("*?[")
JOB_ID = re.compile(r"[1-9][0-9]{0,17}")  # below SQLite's largest integer


class Detail(BaseModel):
    """Why a request was refused, in one line."""

    detail: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {
        400: "a body that cannot be read as JSON at all (not UTF-8)",
        401: "no token, or an unknown or revoked one",
        403: "the token's role may not do this, or the source is not allowed",
        404: "no such run, job or attempt",
        409: "the coordinator refused: the job is not in a state this applies to",
        413: "the request body is too large",
        422: "a malformed body or parameter, or a request the coordinator refused",
        503: "the coordinator or the state database cannot be reached",
    }
    return {c: {"model": Detail, "description": what[c]} for c in (*codes, 422, 503)}


READ = _errors(401, 404)
CHANGE = _errors(400, 401, 403, 404, 409, 413)

Reader = Annotated[TokenInfo | None, Depends(may_read)]
Maintainer = Annotated[TokenInfo, Depends(maintainer)]
Settings = Annotated[Config, Depends(config_of)]

router = APIRouter(prefix="/api", tags=["api"])


def _number(value: str, what: str) -> int:
    """A job's or attempt's id from the path; anything but a number names nothing."""
    if not JOB_ID.fullmatch(value):
        raise HTTPException(404, f"no such {what}: its id is a number")
    return int(value)


def _job_id(value: str) -> int:
    return _number(value, "job")


def _run_id(value: str) -> str:
    if not RUN_ID.fullmatch(value.lower()):
        raise HTTPException(404, "no such run: a run id is a UUID, as `kbo submit` prints it")
    return value.lower()


def _job(config: Config, job_id: int) -> Job:
    with reading(config) as state:
        job = state.job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


def _relay(request: Request) -> Relay:
    relay: Relay = request.app.state.relay
    return relay


def _relayed(call: Any, *args: Any) -> dict[str, Any]:
    try:
        reply: dict[str, Any] = call(*args)
    except Refused as e:
        raise HTTPException(e.status, e.message) from None
    return reply


@router.get(
    "/status",
    summary="Every tracked arch's standing",
    description="The document `kbo status --json` prints: HEAD of the tracked branch and, "
    "per tracked arch (and flavour), OK, STALE, NEVER, FAILING or BUILDING, its last good "
    "commit, how far behind it is, host problems and cancellations.",
    responses=READ,
)
def status(
    config: Settings,
    _: Reader,
    recipe: Annotated[str | None, Query(pattern=f"^{NAME}$", max_length=64)] = None,
) -> dict[str, Any]:
    chosen = recipe or config.default_recipe
    try:
        recipes.scope_of(chosen, config.recipe_dirs)
    except UserError as e:
        raise HTTPException(422, str(e)) from None
    with reading(config) as state:
        report = documents.status(config, chosen, state, fetch=False)
    return report.to_json(time.time())


@router.get(
    "/runs",
    summary="The newest runs",
    description="Submissions and snapshots, newest first: who asked, why, which commit.",
    responses=READ,
)
def runs(
    config: Settings, _: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    with reading(config) as state:
        found = state.recent_runs(limit)
    return {"runs": [r.to_json() for r in found]}


@router.get(
    "/runs/{run}",
    summary="One run with its jobs",
    description="A run and each of its jobs: state, attempts, worker, executor, stage, "
    "first error, retry. What `kbo submit --wait` follows.",
    responses=READ,
)
def run(config: Settings, _: Reader, run: str) -> dict[str, Any]:
    run_id = _run_id(run)
    with reading(config) as state:
        summary = state.run(run_id)
    if summary is None:
        raise HTTPException(404, f"no run {run_id}")
    return summary.to_json()


@router.post(
    "/runs",
    status_code=201,
    summary="Submit the jobs of a commit",
    description="As `kbo submit`: the coordinator plans the jobs of the commit from its "
    "matrix and queues each one not already queued, running or done. The run records the "
    "token's name as its submitter. Maintainers and admins only; the source must be among "
    "allowed_repositories.",
    responses=CHANGE,
)
def submit(request: Request, config: Settings, who: Maintainer, body: SubmitBody) -> dict[str, Any]:
    source = check_source(config, body.source)
    known = arches.supported()
    for name in body.arches:
        if not GLOB_CHARACTERS & set(name) and name not in known:
            raise HTTPException(422, f"arches: unknown architecture {name}")
    asked = body.model_dump() | {"source": source}
    return _relayed(_relay(request).submit, asked, who.name)


@router.post(
    "/runs/{run}/cancel",
    summary="Cancel every job of a run",
    description="As `kbo cancel RUN`: its jobs queued or running are cancelled; jobs that "
    "ended are left as they were (`left`).",
    responses=CHANGE,
)
def cancel_run(request: Request, config: Settings, who: Maintainer, run: str) -> dict[str, Any]:
    run_id = _run_id(run)
    with reading(config) as state:
        if state.jobs_of_run(run_id) is None:
            raise HTTPException(404, f"no run {run_id}")
    return _relayed(_relay(request).cancel, "run", run_id, who.name)


@router.post(
    "/jobs/{job}/cancel",
    summary="Cancel a job",
    description="As `kbo cancel JOB`: a queued job is never built, a running one stops at "
    "its worker's next heartbeat. A job that had ended is listed under `left`.",
    responses=CHANGE,
)
def cancel_job(request: Request, config: Settings, who: Maintainer, job: str) -> dict[str, Any]:
    job_id = _job(config, _job_id(job)).id
    return _relayed(_relay(request).cancel, "job", job_id, who.name)


@router.post(
    "/jobs/{job}/retry",
    summary="Give a job back: a new attempt now",
    description="As `kbo retry JOB`: for a job that ended failed, infra-error, dep-wait, "
    "lost or cancelled; recorded with the token's name. 409 for any other.",
    responses=CHANGE,
)
def retry(request: Request, config: Settings, who: Maintainer, job: str) -> dict[str, Any]:
    job_id = _job(config, _job_id(job)).id
    return _relayed(_relay(request).retry, job_id, who.name)


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    duration = None
    if attempt.started_at is not None and attempt.ended_at is not None:
        duration = round(attempt.ended_at - attempt.started_at, 3)
    return {
        "id": attempt.id,
        "number": attempt.number,
        "state": attempt.state,
        "worker": attempt.worker,
        "worker_host": attempt.worker_host,
        "executor": attempt.executor,
        "created_at": attempt.created_at,
        "started_at": attempt.started_at,
        "ended_at": attempt.ended_at,
        "duration_seconds": duration,
        "first_error": attempt.first_error,
        "retried_by": attempt.retried_by,
        "log": f"/api/attempts/{attempt.id}/log" if attempt.log_path else None,
    }


@router.get(
    "/jobs/{job}/attempts",
    summary="Every attempt at a job",
    description="Each try: its state, worker, executor, how long it ran, its first error "
    "and where its log is.",
    responses=READ,
)
def attempts(config: Settings, _: Reader, job: str) -> dict[str, Any]:
    found = _job(config, _job_id(job))
    with reading(config) as state:
        tries = state.attempts_of_job(found.id)
    return found.to_json() | {"attempts": [_attempt_json(a) for a in tries]}


@router.get(
    "/jobs/{job}/artifacts",
    summary="The packages a job's build made",
    description="Name, size and SHA-256 of each file the newest attempt that made any "
    "recorded. The files stay on the worker that built them (`worker_host`): the "
    "coordinator keeps only this record, so there is no download.",
    responses=READ,
)
def artifacts(config: Settings, _: Reader, job: str) -> dict[str, Any]:
    found = _job(config, _job_id(job))
    with reading(config) as state:
        tries = state.attempts_of_job(found.id)
    made = next((a for a in reversed(tries) if a.artifacts), None)
    return {
        "job": found.id,
        "attempt": None if made is None else made.number,
        "worker_host": None if made is None else made.worker_host,
        "artifacts": [] if made is None else files.artifacts(made),
    }


@router.get(
    "/workers",
    summary="The build workers",
    description="The document `kbo workers --json` prints: each worker that announced "
    "itself, its arches, executors, slots, when last seen, whether live, its jobs now.",
    responses=_errors(401),
)
def workers(config: Settings, _: Reader) -> list[dict[str, Any]]:
    with reading(config) as state:
        return documents.workers(config, state, time.time())


@router.get(
    "/attempts/{attempt}/log",
    summary="An attempt's build log",
    description="The log as the coordinator keeps it: sent gzip-compressed as it is "
    "stored (Content-Encoding: gzip) when the client accepts gzip, else as plain text.",
    responses={200: {"content": {"text/plain": {}}}, **READ},
    response_model=None,
)
def log(
    request: Request, config: Settings, _: Reader, attempt: str
) -> FileResponse | StreamingResponse:
    attempt_id = _number(attempt, "attempt")
    with reading(config) as state:
        found = state.attempt(attempt_id)
    path = None if found is None else files.log_file(config, found)
    if path is None:
        raise HTTPException(404, f"no log kept for attempt {attempt_id}")
    media = "text/plain; charset=utf-8"
    accepts = request.headers.get("accept-encoding", "")
    if "gzip" in {part.split(";")[0].strip() for part in accepts.split(",")}:
        return FileResponse(
            path,
            media_type=media,
            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
        )
    return StreamingResponse(
        files.gunzipped(path), media_type=media, headers={"Vary": "Accept-Encoding"}
    )
