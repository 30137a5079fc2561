"""Options every verb shares go before or after the verb, and bad arguments are one line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import KBO, LINUX_61, RunKbo, copy_debian, git


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config for embedded mode on a fresh packaging repository tracking alpha."""
    repo = copy_debian(LINUX_61, tmp_path / "linux")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Import linux 6.1.176-1 packaging")
    path = tmp_path / "kbo.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\nrepository = "{repo}"\n'
        'branch = "main"\ntracked_arches = ["alpha"]\n'
    )
    return path


def kbo_without_config(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``kbo`` with no config to find but the one named on the command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KBO_")}
    return subprocess.run(
        [str(KBO), *map(str, args)],
        capture_output=True,
        text=True,
        env=env | {"HOME": str(tmp_path)},
        check=False,
    )


def test_config_and_json_are_accepted_before_or_after_the_verb(
    tmp_path: Path, config: Path
) -> None:
    forms = (
        ("--config", config, "--json", "status"),
        ("--config", config, "status", "--json"),
        ("--json", "status", "--config", config),
        ("status", "--config", config, "--json"),
    )
    results = [kbo_without_config(tmp_path, *form) for form in forms]
    for form, result in zip(forms, results, strict=True):
        assert (result.returncode, result.stderr) == (1, ""), form  # alpha was never built
        assert json.loads(result.stdout)["arches"][0]["state"] == "NEVER", form
    assert len({r.stdout for r in results}) == 1


def test_config_after_the_verb_wins_over_the_one_before(tmp_path: Path, config: Path) -> None:
    missing = tmp_path / "missing.toml"
    result = kbo_without_config(tmp_path, "--config", config, "status", "--config", missing)
    assert (result.returncode, result.stderr) == (2, f"kbo: {missing}: config file not found\n")


def test_config_before_a_verb_that_reads_none_is_ignored(kbo: RunKbo, config: Path) -> None:
    result = kbo("--config", config, "--json", "matrix", LINUX_61, "--arch", "alpha")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 2


def test_top_level_help_documents_the_global_options(kbo: RunKbo) -> None:
    result = kbo("--help")
    assert result.returncode == 0
    assert "also accepted after the verb" in result.stdout
    assert "--config FILE" in result.stdout
    assert "--json" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--json", "chroot", "alpha"), "kbo: --json: `kbo chroot` has no JSON output"),
        (("--config",), "kbo: argument --config: expected one argument"),
        (("statue",), "kbo: argument VERB: invalid choice: 'statue'"),
        (("matrix",), "kbo: the following arguments are required: SOURCE"),
        (("matrix", LINUX_61, "--colour", "x"), "kbo: unrecognized arguments: --colour x"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    kbo: RunKbo, args: tuple[str | Path, ...], message: str
) -> None:
    result = kbo(*args)
    assert (result.returncode, result.stdout) == (2, "")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr


def test_verbose_goes_before_or_after_the_verb(tmp_path: Path) -> None:
    config = tmp_path / "kbo.toml"
    config.write_text("build_slots = 2\n")
    for argv in (("-v", "config", "--check"), ("config", "--check", "-v")):
        result = subprocess.run(
            [str(KBO), *argv, "--config", str(config)], capture_output=True, text=True
        )
        assert (result.returncode, result.stdout) == (0, f"{config}: OK\n"), argv
