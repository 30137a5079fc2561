"""Logs and artifacts, found only from ids recorded in the database: a request names an
attempt or a job, never a path."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kbo.config import Config
from kbo.orchestrator.state import Attempt

CHUNK = 64 << 10
# What a listing shows of each artifact: never the worker's own path.
ARTIFACT_FIELDS = ("name", "size", "sha256", "package", "architecture")


def log_file(config: Config, attempt: Attempt) -> Path | None:
    """The attempt's compressed log, if the coordinator kept one where it keeps logs:
    a recorded path that leads anywhere else (a link, a damaged row) is not served."""
    if not attempt.log_path:
        return None
    logs = (config.state_path / "logs").resolve()
    path = Path(attempt.log_path)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(logs) or not real.is_file():
        return None
    return real


def gunzipped(path: Path) -> Iterator[bytes]:
    """The log's text, decompressed as it is sent; a damaged end just ends it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as raw, gzip.GzipFile(fileobj=raw) as text:
        while True:
            try:
                chunk = text.read(CHUNK)
            except (OSError, EOFError):
                return
            if not chunk:
                return
            yield chunk


def artifacts(attempt: Attempt) -> list[dict[str, Any]]:
    found = [a for a in attempt.artifacts if isinstance(a, dict)]
    return [{k: a[k] for k in ARTIFACT_FIELDS if k in a} for a in found]
