"""``kbo recipes``: the recipes on the recipe path, and ``--check`` of every file on it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kbo.cli.common import add_config_argument
from kbo.errors import EXIT_BAD_INPUT, EXIT_OK, UserError

if TYPE_CHECKING:  # msgspec and the recipes are imported when the verb runs
    from kbo.recipes import Recipe


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "recipes",
        help="list the recipes, or check every recipe file (exit 2 if any is bad)",
        description="Lists the recipes a job can name: kbo's own and those of recipe_dirs "
        "(which override kbo's own of the same name). --check validates every file on the "
        "recipe path against the recipe schema: one line on stderr per bad file and exit 2, "
        "else one line saying they are OK.",
    )
    add_config_argument(parser)
    parser.add_argument("--check", action="store_true", help="validate every recipe file")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kbo import recipes
    from kbo.config import load_config

    if args.json and args.check:
        raise UserError("--json goes with the list, not with --check")
    config = load_config(args.config)
    problems = [
        f"{directory}: no such folder (in recipe_dirs)"
        for directory in config.recipe_dirs
        if not Path(directory).expanduser().is_dir()
    ]
    files = recipes.paths(config.recipe_dirs) if args.check else _listed(config.recipe_dirs)
    found: list[recipes.Recipe] = []
    where: dict[str, Path] = {}
    for path in files:
        try:
            found.append(recipes.load_file(path))
            where[path.stem] = path
        except UserError as e:
            problems.append(str(e))
    for problem in problems:
        print(f"kbo: {problem}", file=sys.stderr)
    if args.check:
        if not problems:
            print(f"{len(files)} recipe files on the recipe path: OK")
        return EXIT_BAD_INPUT if problems else EXIT_OK
    if args.json:
        print(json.dumps([_entry(r, where[r.name]) for r in found], indent=2))
    else:
        from kbo.cli.table import format_table

        print(
            format_table(
                ["RECIPE", "SCOPE", "EXECUTORS", "FILE", "DESCRIPTION"],
                [
                    [r.name, r.scope, ",".join(r.executors), str(where[r.name]), r.description]
                    for r in found
                ],
            )
        )
    return EXIT_BAD_INPUT if problems else EXIT_OK


def _listed(extra_dirs: tuple[str, ...]) -> list[Path]:
    """The file each recipe name stands for: a later folder overrides an earlier one."""
    from kbo import recipes

    chosen = {path.stem: path for path in recipes.paths(extra_dirs)}
    return [chosen[name] for name in sorted(chosen)]


def _entry(recipe: Recipe, path: Path) -> dict[str, Any]:
    return {
        "name": recipe.name,
        "description": recipe.description,
        "executors": list(recipe.executors),
        "scope": recipe.scope,
        "file": str(path),
    }
