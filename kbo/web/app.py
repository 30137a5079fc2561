"""The web application: ``create_app(config)`` assembles the routers, the errors as one
line each, and the guards; ``serve`` runs it under uvicorn.

FastAPI for typed request models (a bad body is a 422 naming the field, and the OpenAPI
description at ``/openapi.json`` comes from the same declarations); uvicorn as the ASGI
server, behind a TLS-terminating proxy (deploy/README.md).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import kbo
from kbo.config import Config
from kbo.errors import KboError
from kbo.text import one_line
from kbo.web import api
from kbo.web.guards import BodyLimit, LastLine
from kbo.web.relay import Relay

log = logging.getLogger("kbo.web")


def create_app(config: Config) -> FastAPI:
    app = FastAPI(
        title="kbo",
        version=kbo.__version__,
        description="The coordinator's HTTP API: the standing of every Debian "
        "architecture of the kernel package, runs, jobs, attempts, logs and workers; "
        "maintainers submit, retry and cancel with a token (`kbo token add`).",
        docs_url=None,
        redoc_url=None,
    )
    app.state.config = config
    app.state.relay = Relay(config)
    app.include_router(api.router)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(KboError, _kbo_error)
    # Outermost first: the last line catches whatever the body limit or the app lets out.
    app.add_middleware(BodyLimit)
    app.add_middleware(LastLine)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description, saying that reading needs no token when ``read_access`` is
    public: a GET's security then also allows none (``{}``)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        config: Config = app.state.config
        if config.read_access == "public":
            for operations in schema.get("paths", {}).values():
                get = operations.get("get")
                if get is not None and get.get("security"):
                    get["security"] = [{}, *get["security"]]
        app.openapi_schema = schema
    return app.openapi_schema


def _where(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if part != "body") or "body"


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """A 422 in one line: the first thing wrong, and where."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = _where(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        message = "the body is not valid JSON"
    elif first.get("type") == "extra_forbidden":
        message = f"{where}: unknown field"
    else:
        message = f"{where}: {first.get('msg', 'invalid')}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return JSONResponse({"detail": one_line(message) + more}, status_code=422)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": one_line(str(exc.detail))},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _kbo_error(request: Request, exc: Exception) -> JSONResponse:
    """What kbo itself could not do for the request (its database refused, git failed,
    no repository configured): the service's trouble, told in kbo's one line."""
    message = one_line(str(exc))
    log.warning("%s %s: %s", request.method, request.url.path, message)
    return JSONResponse({"detail": message}, status_code=503)


def serve(config: Config) -> None:
    """Listen on ``web_listen``:``web_port`` until stopped. X-Forwarded-For and -Proto are
    believed only from ``web_proxies``; the access log shows paths, never a token (those
    travel in the Authorization header)."""
    import uvicorn

    uvicorn.run(
        create_app(config),
        host=config.web_listen,
        port=config.web_port,
        proxy_headers=True,
        forwarded_allow_ips=list(config.web_proxies),
        server_header=False,
        log_config=None,
    )
