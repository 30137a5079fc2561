"""The packaging repository as the coordinator sees it: a local path, or a URL it mirrors."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from orchestrator import gitrepo
from orchestrator.config import Config
from orchestrator.errors import InfraError, UserError

_URL = re.compile(r"^(https?|git|ssh|file)://|^[\w.-]+@[\w.-]+:")


def is_url(source: str) -> bool:
    return bool(_URL.match(source))


def source_id(source: str) -> str:
    """How jobs name their source: the URL, or the repository's absolute path."""
    return source if is_url(source) else str(Path(source).expanduser().resolve())


def local_repository(source: str, config: Config, *, fetch: bool = True) -> Path:
    """A local git repository for SOURCE: the path itself, or a mirror of the URL, fetched
    now unless ``fetch`` is False and a mirror exists."""
    if not is_url(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise UserError("packaging repository does not exist", source)
        if not gitrepo.is_repository(path):
            raise UserError("not a git repository", source)
        return path
    mirror = (
        config.state_path / "repos" / (hashlib.sha256(source.encode()).hexdigest()[:16] + ".git")
    )
    if not mirror.exists():
        _git_network(["git", "clone", "--quiet", "--mirror", "--", source, str(mirror)], source)
    elif fetch:
        _git_network(["git", "-C", str(mirror), "fetch", "--quiet", "--prune", "origin"], source)
    return mirror


def _git_network(argv: list[str], source: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise InfraError("git timed out reaching the repository", source) from None
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise InfraError(f"cannot fetch: {lines[-1] if lines else 'git failed'}", source)
