"""Settings and small rules of the core that need no running service."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbo.config import Config, load_config
from kbo.errors import UserError
from kbo.messaging.app import make_app
from tests.conftest import RunKbo


def test_celery_settings_for_builds_that_last_hours(tmp_path: Path) -> None:
    config = Config(
        broker_url="redis://:secret@127.0.0.1:1/0",
        max_build_seconds=6 * 3600,
        state_dir=str(tmp_path),
    )
    conf = make_app(config).conf
    assert conf.task_serializer == conf.result_serializer == "json"
    assert conf.accept_content == conf.result_accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    for timeout in (
        conf.broker_transport_options["visibility_timeout"],
        conf.result_backend_transport_options["visibility_timeout"],
        conf.visibility_timeout,
    ):
        assert timeout > config.max_build_seconds


def test_embedded_mode_uses_the_filesystem_under_the_state_dir(tmp_path: Path) -> None:
    app = make_app(Config(state_dir=str(tmp_path)))
    conf = app.conf
    assert conf.broker_url == "filesystem://"
    assert conf.broker_transport_options["data_folder_in"] == str(tmp_path / "broker")
    assert conf.result_backend.endswith(f"+file://{tmp_path / 'results'}")
    with app.connection_for_write() as connection:  # kombu's, with atomic writes
        assert type(connection.transport).__module__ == "kbo.messaging.filesystem_broker"
    assert type(app.backend).__module__ == "kbo.messaging.filesystem_broker"


def test_environment_overrides_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "kbo.toml"
    path.write_text('broker_url = "redis://a/0"\nbuild_slots = 2\ntracked_arches = ["alpha"]\n')
    config = load_config(str(path), {"KBO_BUILD_SLOTS": "4", "KBO_TRACKED_ARCHES": "hppa,mips"})
    assert (config.broker_url, config.build_slots) == ("redis://a/0", 4)
    assert config.tracked_arches == ("hppa", "mips")
    assert config.source == str(path)
    assert load_config(None, {"KBO_CONFIG": str(path)}).broker_url == "redis://a/0"
    with pytest.raises(UserError, match="KBO_BUILD_SLOTS"):
        load_config(str(path), {"KBO_BUILD_SLOTS": "many"})


def test_worker_refuses_an_arch_this_host_cannot_build(kbo: RunKbo, tmp_path: Path) -> None:
    (tmp_path / "kbo.toml").write_text(f'state_dir = "{tmp_path}"\n')
    result = kbo("worker", "--config", tmp_path / "kbo.toml", "--arch", "alpha,ia64")
    assert result.returncode == 2
    assert result.stderr.startswith("kbo: this host cannot build ia64: cross: Debian ships no")


def test_a_heartbeat_records_only_a_printable_stage(tmp_path: Path) -> None:
    """The stage reaches a maintainer's terminal: escape codes from whoever can write to
    the broker are not recorded, and the lease is renewed all the same."""
    from kbo.orchestrator.coordinator import Coordinator
    from kbo.orchestrator.state import JobSpec, Run

    config = Config(state_dir=str(tmp_path))
    coordinator = Coordinator(config, make_app(config))
    run = Run("r", "me", "", "src", "main", "c", "noop", "1")
    (attempt,) = coordinator.state.record_run(
        run, [JobSpec("src", "c", "noop", "alpha", "none", "f")]
    )
    coordinator.claim(attempt, "token", "w", "h")
    assert coordinator.heartbeat(attempt, "token", "step build")
    assert coordinator.heartbeat(attempt, "token", "\x1b]0;owned\x07")
    assert coordinator.state.attempt(attempt).stage == "step build"
