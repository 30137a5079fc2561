"""The core's bad input: one clear line, the documented exit status, nothing recorded."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import Cluster, free_port


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    yield cluster
    cluster.stop_all()


def one_line(result: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def runs_recorded(cluster: Cluster) -> int:
    if not (cluster.tmp / "state" / "kbo.sqlite").exists():
        return 0
    return int(cluster.query("SELECT COUNT(*) FROM runs")[0][0])


def test_unknown_arch_in_arch_option(embedded: Cluster) -> None:
    one_line(embedded.kbo("submit", "--arch", "alpha,vax"), 2, "--arch vax: unknown architecture")
    assert runs_recorded(embedded) == 0


def test_debian_arch_without_jobs_in_the_matrix(embedded: Cluster) -> None:
    one_line(embedded.kbo("submit", "--arch", "x32"), 2, "--arch 'x32' matches no arch")
    assert runs_recorded(embedded) == 0


def test_unreachable_broker_is_named_without_its_password(tmp_path: Path) -> None:
    port = free_port()
    cluster = Cluster(tmp_path, broker_url=f"redis://:hunter2@127.0.0.1:{port}/0")
    for args in (["submit", "--arch", "alpha"], ["worker", "--arch", "alpha"], ["coordinator"]):
        line = one_line(cluster.kbo(*args, timeout=60), 3, f"127.0.0.1:{port}")
        assert "hunter2" not in line
    assert runs_recorded(cluster) == 0


def test_unwritable_state_database(embedded: Cluster) -> None:
    state = embedded.tmp / "state"
    state.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(state)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("needs root to mount a read-only file system")
    try:
        one_line(embedded.kbo("submit", "--arch", "alpha"), 2, str(state / "kbo.sqlite"))
        one_line(embedded.kbo("coordinator"), 2, str(state / "kbo.sqlite"))
    finally:
        subprocess.run(["umount", str(state)], check=True)
    assert runs_recorded(embedded) == 0


def test_missing_packaging_repository(embedded: Cluster) -> None:
    missing = embedded.tmp / "no-such-repo"
    one_line(embedded.kbo("submit", missing, "--arch", "alpha"), 2, str(missing), "does not exist")
    assert runs_recorded(embedded) == 0
    embedded.config.write_text(
        embedded.config.read_text().replace(str(embedded.repo), str(missing))
    )
    one_line(embedded.kbo("status"), 2, str(missing), "does not exist")


def test_malformed_config(embedded: Cluster) -> None:
    text = embedded.config.read_text()
    embedded.config.write_text(text + 'lease_seconds = "soon"\n')
    one_line(embedded.kbo("status"), 2, str(embedded.config), "malformed config")
    embedded.config.write_text(text.replace("lease_seconds = 4", 'lease_seconds = "soon"'))
    one_line(
        embedded.kbo("submit", "--arch", "alpha"),
        2,
        str(embedded.config),
        "lease_seconds must be a whole number of at least 1, not 'soon'",
    )
    embedded.config.write_text(text + "colour = 'blue'\n")
    one_line(embedded.kbo("status"), 2, "unknown setting 'colour'")
    assert runs_recorded(embedded) == 0


def test_bad_recipe_is_refused_before_any_run_is_recorded(embedded: Cluster) -> None:
    """A recipe that would fail every job on the workers is refused by the coordinator."""
    bad = embedded.tmp / "recipes" / "bad.toml"
    bad.write_text('[[step]]\nargv = ["make", "{flavor}"]\n')
    for verb in (["submit", "--arch", "alpha"], ["snapshot"]):
        one_line(
            embedded.kbo(*verb, "--recipe", "bad"),
            2,
            f"{bad}: step 1 argv: unknown placeholder {{flavor}} (known: arch,",
        )
        assert runs_recorded(embedded) == 0
    one_line(embedded.kbo("recipes", "--check"), 2, f"{bad}: step 1 argv")
