"""The maintainer's verbs against a real redis-server and real `kbo coordinator` and
`kbo worker` processes: waiting with a timeout, cancel, retry (a give-back), the worker
inventory and the arches no live worker serves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import Cluster, RedisServer


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, broker_url=redis_server.url)
    yield cluster
    cluster.stop_all()


def test_submit_wait_timeout_stops_waiting_with_its_own_status(cluster: Cluster) -> None:
    cluster.start_coordinator()  # and no worker: nothing will build
    started = time.monotonic()
    result = cluster.kbo("submit", "--arch", "alpha", "--wait", "--timeout", "2")
    took = time.monotonic() - started
    assert result.returncode == 124, result.stderr
    assert 2 <= took < 10, took
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kbo: stopped waiting after 2 s"), lines
    assert "2 of 2 jobs" in lines[0] and "stay queued" in lines[0]
    assert {row[0] for row in cluster.query("SELECT state FROM jobs")} == {"queued"}
