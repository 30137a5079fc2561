"""Recipes are data: each shipped one must load, and bad ones fail in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbo import recipes
from kbo.errors import UserError


@pytest.mark.parametrize("name", recipes.supported())
def test_every_shipped_recipe_loads(name: str) -> None:
    recipe = recipes.load(name)
    assert recipe.steps and all(step.argv for step in recipe.steps)
    assert set(recipe.executors) <= set(recipes.EXECUTORS)


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "bad.toml").write_text(text)
    return tmp_path


def test_unknown_executor_is_refused(tmp_path: Path) -> None:
    directory = write(tmp_path, 'executors = ["chroot"]\n[[step]]\nargv = ["true"]\n')
    with pytest.raises(UserError, match="unknown executor 'chroot'"):
        recipes.load("bad", [str(directory)])


def test_shell_strings_and_unknown_placeholders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="argv must be a list of strings"):
        recipes.load("bad", [str(write(tmp_path, '[[step]]\nargv = "make all"\n'))])
    with pytest.raises(UserError, match=r"unknown placeholder \{home\}"):
        recipes.load("bad", [str(write(tmp_path, '[[step]]\nargv = ["ls", "{home}"]\n'))])


def test_placeholders_are_filled_from_the_job() -> None:
    recipe = recipes.Recipe("r", "", ("cross",), (recipes.Step("s", ("make", "{key}")),), 1, 1)
    assert recipe.argv(recipe.steps[0], {"key": "alpha_none_alpha-smp"}) == [
        "make",
        "alpha_none_alpha-smp",
    ]


def test_emulated_builds_get_longer_limits() -> None:
    recipe = recipes.load("kbuild-smoke")
    assert recipe.limits("cross") == (recipe.timeout, recipe.no_output_timeout)
    total, quiet = recipe.limits("qemu")
    assert total == recipe.timeout * recipe.emulation_factor > recipe.timeout
    assert quiet > recipe.no_output_timeout
