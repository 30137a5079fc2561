"""Where a worker keeps its files, apart from the coordinator's: a worker started as
root runs as ``worker_user`` and owns these, and nothing else of the state directory."""

from __future__ import annotations

from pathlib import Path

from kbo.config import Config


def worker_dir(config: Config) -> Path:
    """Job directories, raw logs, artifacts, git mirrors and the steps' /etc."""
    return config.state_path / "worker"


def mirrors(config: Config) -> Path:
    return worker_dir(config) / "repos"


def owned_by_worker(config: Config) -> list[Path]:
    """What the worker writes: its own directory and the cache (downloads, prepared
    trees, chroots, ccache)."""
    return [worker_dir(config), config.cache_path]
