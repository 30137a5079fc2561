"""The CLI as a client of ``kbo web`` (``--server URL`` or ``server``): requests over
HTTP with the token from ``token`` (or ``KBO_TOKEN``) as a Bearer header. Every failure
becomes kbo's one line and exit status; the token is never printed."""

from __future__ import annotations

import argparse
from typing import Any

from kbo.cli.common import text
from kbo.config import Config
from kbo.errors import InfraError, KboError, UserError

# Refusals of what was asked: bad input, exit 2 (as the verbs' own refusals are).
REFUSALS = {400, 401, 403, 404, 405, 409, 413, 422}
TIMEOUT = 30.0


def add_server_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        metavar="URL",
        type=text,
        help="ask this kbo web service instead of the broker (default: the server setting)",
    )


def server_of(args: argparse.Namespace, config: Config) -> Server | None:
    url = getattr(args, "server", None) or config.server
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--server must be an http:// or https:// URL, not {url!r}")
    return Server(url, config.token)


class Server:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._token = token

    def get(self, path: str, timeout: float = TIMEOUT) -> Any:
        return self._call("GET", path, None, timeout)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call("POST", path, body, TIMEOUT * 4)  # the coordinator may fetch git

    def _call(self, method: str, path: str, body: dict[str, Any] | None, timeout: float) -> Any:
        import requests

        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = requests.request(
                method, self.url + path, json=body, headers=headers, timeout=timeout
            )
        except requests.Timeout:
            raise InfraError(f"{self.url} did not answer within {timeout:.0f} s") from None
        except requests.RequestException as e:
            raise InfraError(f"cannot reach {self.url}: {_reason(e)}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        detail = answer.get("detail") if isinstance(answer, dict) else None
        if response.status_code >= 400:
            said = detail if isinstance(detail, str) else response.reason
            error: KboError
            if response.status_code in REFUSALS:
                error = UserError(f"{self.url}: {said} (HTTP {response.status_code})")
            else:
                error = InfraError(f"{self.url}: {said} (HTTP {response.status_code})")
            raise error
        if answer is None:
            raise InfraError(f"{self.url} answered {method} {path} with no JSON: is it kbo web?")
        return answer


def _reason(error: Exception) -> str:
    """The innermost cause, without the repetition requests wraps it in."""
    while error.__context__ is not None and isinstance(error.__context__, Exception):
        error = error.__context__
    return str(error).split(": ", 1)[-1] or type(error).__name__
