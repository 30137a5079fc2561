"""Recipes are data: each shipped one must load, and bad ones fail in one clear line that
names the file and the key, when loaded and under ``kbo recipes --check``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kbo import recipes
from kbo.errors import UserError
from tests.conftest import KBO

STEP = '[[step]]\nargv = ["true"]\n'
# Each class of defect, and what the one line says about it.
DEFECTS = {
    "unknown-placeholder": (
        '[[step]]\nargv = ["true"]\n[[step]]\nargv = ["make", "{flavor}"]\n',
        "step 2 argv: unknown placeholder {flavor} (known: arch, featureset, flavour,",
    ),
    "no-steps": ('description = "builds nothing, not even true"\n', "no [[step]]"),
    "wrong-type": (
        f'timeout = "60"\n{STEP}',
        "timeout must be a whole number of at least 1, not '60'",
    ),
    "shell-string": (
        '[[step]]\nargv = "make all"\n',
        "step 1 argv must be a non-empty list of strings, not 'make all'",
    ),
    "unknown-key": (f"netwrok = true\n{STEP}", "unknown key 'netwrok' (did you mean network?)"),
    "unknown-executor": (
        f'executors = ["chroot"]\n{STEP}',
        "executors: unknown executor 'chroot' (known: native, cross, qemu, none)",
    ),
}


@pytest.mark.parametrize("name", recipes.supported())
def test_every_shipped_recipe_loads(name: str) -> None:
    recipe = recipes.load(name)
    assert recipe.steps and all(step.argv for step in recipe.steps)
    assert set(recipe.executors) <= set(recipes.EXECUTORS)


def write(tmp_path: Path, text: str, name: str = "bad") -> Path:
    (tmp_path / f"{name}.toml").write_text(text)
    return tmp_path


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(UserError) as caught:
        recipes.load("bad", [str(write(tmp_path, text))])
    return str(caught.value)


@pytest.mark.parametrize("defect", DEFECTS)
def test_each_defect_is_refused_on_load_naming_file_and_key(tmp_path: Path, defect: str) -> None:
    text, expected = DEFECTS[defect]
    assert refusal(tmp_path, text).startswith(f"{tmp_path / 'bad.toml'}: {expected}")


def test_placeholders_are_checked_wherever_the_worker_fills_them(tmp_path: Path) -> None:
    assert "expect_packages: unknown placeholder {flavor}" in refusal(
        tmp_path, f'expect_packages = ["linux-image-{{flavor}}"]\n{STEP}'
    )
    assert "expect_files: unknown placeholder {home}" in refusal(
        tmp_path, f'expect_files = ["{{home}}/x"]\n{STEP}'
    )
    assert "write {{ or }} for a brace" in refusal(tmp_path, '[[step]]\nargv = ["echo", "{"]\n')
    assert "Unknown conversion specifier" in refusal(tmp_path, '[[step]]\nargv = ["{arch!x}"]\n')
    recipes.load("good", [str(write(tmp_path, '[[step]]\nargv = ["echo", "{{}}"]\n', "good"))])


def test_keys_inside_a_step_and_the_name_are_checked(tmp_path: Path) -> None:
    assert refusal(tmp_path, '[[step]]\nargs = ["true"]\n').endswith(
        "step 1: unknown key 'args' (did you mean argv?)"
    )
    assert refusal(tmp_path, '[[step]]\nname = "x"\n').endswith(
        "step 1: argv is missing: it must be a non-empty list of strings"
    )
    assert refusal(tmp_path, '[step]\nargv = ["true"]\n').endswith(
        "step must be a list of tables, not {'argv': ['true']}"
    )
    assert refusal(tmp_path, f'name = "other"\n{STEP}').endswith("unknown key 'name'")
    assert "malformed TOML" in refusal(tmp_path, "timeout = = 1\n")


def test_placeholders_are_filled_from_the_job() -> None:
    step = recipes.Step(name="s", argv=("make", "{key}"))
    recipe = recipes.Recipe(name="r", executors=("cross",), steps=(step,))
    values = recipes.Values(
        arch="alpha",
        featureset="none",
        flavour="alpha-smp",
        kernel_arch="alpha",
        commit="0" * 40,
        cross_prefix="alpha-linux-gnu-",
        key="alpha_none_alpha-smp",
        jobs="2",
        cc="alpha-linux-gnu-gcc",
    )
    assert recipe.argv(step, values) == ["make", "alpha_none_alpha-smp"]


def test_emulated_builds_get_longer_limits() -> None:
    recipe = recipes.load("kbuild-smoke")
    assert recipe.limits("cross") == (recipe.timeout, recipe.no_output_timeout)
    total, quiet = recipe.limits("qemu")
    assert total == recipe.timeout * recipe.emulation_factor > recipe.timeout
    assert quiet > recipe.no_output_timeout


# -- kbo recipes, as a process -------------------------------------------------------


def run_recipes(tmp_path: Path, *args: str, dirs: list[Path]) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "kbo.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\nrecipe_dirs = {json.dumps([str(d) for d in dirs])}\n'
    )
    return subprocess.run(
        [str(KBO), "recipes", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_passes_kbo_own_recipes_in_one_line(tmp_path: Path) -> None:
    result = run_recipes(tmp_path, "--check", dirs=[])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{len(recipes.supported())} recipe files on the recipe path: OK\n"
    assert result.stderr == ""


@pytest.mark.parametrize("defect", DEFECTS)
def test_check_refuses_each_defect_in_one_line(tmp_path: Path, defect: str) -> None:
    text, expected = DEFECTS[defect]
    directory = tmp_path / "recipes"
    directory.mkdir()
    write(directory, STEP, "good")
    write(directory, text, defect)
    result = run_recipes(tmp_path, "--check", dirs=[directory])
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"kbo: {directory / defect}.toml: {expected}"), lines[0]
    assert result.stdout == ""


def test_check_names_every_bad_file_and_a_missing_folder(tmp_path: Path) -> None:
    directory = tmp_path / "recipes"
    directory.mkdir()
    for defect, (text, _) in DEFECTS.items():
        write(directory, text, defect)
    result = run_recipes(tmp_path, "--check", dirs=[directory, tmp_path / "absent"])
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"kbo: {tmp_path / 'absent'}: no such folder (in recipe_dirs)"
    assert len(lines) == 1 + len(DEFECTS), result.stderr
    for defect, (_, expected) in DEFECTS.items():
        line = f"kbo: {directory / defect}.toml: {expected}"
        assert any(found.startswith(line) for found in lines[1:]), (line, lines)


def test_list_shows_each_recipe_once_and_where_it_comes_from(tmp_path: Path) -> None:
    directory = tmp_path / "recipes"
    directory.mkdir()
    write(directory, f'description = "my own noop"\nscope = "arch"\n{STEP}', "noop")
    result = run_recipes(tmp_path, "--json", dirs=[directory])
    assert result.returncode == 0, result.stderr
    listed = {r["name"]: r for r in json.loads(result.stdout)}
    assert sorted(listed) == recipes.supported()
    assert listed["noop"] == {
        "name": "noop",
        "description": "my own noop",
        "executors": list(recipes.EXECUTORS),
        "scope": "arch",
        "file": str(directory / "noop.toml"),
    }
    assert listed["kbuild-smoke"]["scope"] == "arch"
    table = run_recipes(tmp_path, dirs=[directory])
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == [
        "RECIPE", "SCOPE", "EXECUTORS", "FILE", "DESCRIPTION"
    ]  # fmt: skip
    assert "linux-setup" in table.stdout
