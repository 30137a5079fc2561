"""``kbo status``: every tracked arch, and whether it is built since the last commit."""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import recipes
from orchestrator import gitrepo, repository
from orchestrator.cli.common import add_config_argument
from orchestrator.config import Config, load_config
from orchestrator.errors import EXIT_NOT_OK, EXIT_OK, UserError
from orchestrator.matrix import representatives
from orchestrator.plan import load_plan
from orchestrator.staleness import Commit, Result, Standing, assess
from orchestrator.state import State
from orchestrator.status_html import render, write
from orchestrator.table import format_table


def register(verbs: Any) -> None:
    parser = verbs.add_parser(
        "status",
        help="show which tracked arches are built at the last commit (exit 1 if any is not)",
        description="For each tracked arch: OK, STALE, NEVER, FAILING or BUILDING, the last "
        "commit with a complete successful build, and how far HEAD is ahead of it.",
    )
    add_config_argument(parser)
    parser.add_argument("--recipe", help="judge builds of this recipe (default: from config)")
    parser.add_argument("--flavours", action="store_true", help="one row per flavour")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--html", metavar="FILE", help="also write a static status page")
    parser.set_defaults(run=run)


def standings(config: Config, recipe: str) -> tuple[str, list[Standing]]:
    """HEAD of the tracked branch, and the standing of every tracked arch against it."""
    if not config.repository:
        raise UserError("no repository configured (set repository in kbo.toml or KBO_REPOSITORY)")
    repo = repository.local_repository(config.repository, config)
    head = gitrepo.resolve(repo, config.branch)
    history = [Commit(sha, ts) for sha, ts in gitrepo.history(repo, head)]

    per_arch = recipes.scope_of(recipe, config.recipe_dirs) == "arch"

    @functools.cache
    def jobs_at(sha: str) -> dict[str, set[tuple[str, str]]]:
        by_arch: dict[str, set[tuple[str, str]]] = {}
        jobs = load_plan(str(repo), sha).matrix.jobs
        for job in representatives(jobs) if per_arch else jobs:
            by_arch.setdefault(job.arch, set()).add((job.featureset, job.flavour))
        return by_arch

    tracked = list(config.tracked_arches) or sorted(jobs_at(head))
    for arch in tracked:
        if arch not in jobs_at(head):
            raise UserError(
                f"tracked arch {arch!r} has no jobs in the matrix at {head[:12]}", config.source
            )
    state = State(config.database)
    try:
        rows = state.results(repository.source_id(config.repository), recipe)
    finally:
        state.close()
    results = [
        Result(r["commit_sha"], r["arch"], r["featureset"], r["flavour"], r["state"]) for r in rows
    ]
    return head, [
        assess(arch, history, functools.partial(_flavours_of, jobs_at, arch), results)
        for arch in tracked
    ]


def _flavours_of(
    jobs_at: Callable[[str], dict[str, set[tuple[str, str]]]], arch: str, sha: str
) -> set[tuple[str, str]]:
    return jobs_at(sha).get(arch, set())


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    recipe = args.recipe or config.default_recipe
    head, arches = standings(config, recipe)
    now = time.time()
    if args.html:
        write_page(args.html, config, recipe, head, arches, now)
    if args.json:
        print(
            json.dumps(
                {
                    "head": head,
                    "branch": config.branch,
                    "recipe": recipe,
                    "arches": [a.to_json(now) for a in arches],
                },
                indent=2,
            )
        )
    else:
        print(f"{config.repository} {config.branch} at {head[:12]}, recipe {recipe}\n")
        rows = [_row(s, now) for a in arches for s in ([a, *a.flavours] if args.flavours else [a])]
        print(
            format_table(["ARCH", "STATE", "LAST GOOD", "BEHIND", "STALE FOR", "FAILING AT"], rows)
        )
    return EXIT_OK if all(a.state == "OK" for a in arches) else EXIT_NOT_OK


def write_page(
    path: str, config: Config, recipe: str, head: str, arches: list[Standing], now: float
) -> None:
    title = f"kbo: {config.repository} {config.branch}, recipe {recipe}"
    write(Path(path), render(title, head, arches, now))


def _row(s: Standing, now: float) -> list[str]:
    good = (
        "-"
        if s.last_good is None
        else (
            f"{s.last_good.sha[:7]} {time.strftime('%Y-%m-%d', time.gmtime(s.last_good.timestamp))}"
        )
    )
    return [
        s.name,
        s.state,
        good,
        "-" if s.commits_behind is None else str(s.commits_behind),
        "-" if s.stale_since is None else _age(now - s.stale_since),
        (s.failing_commit or "-")[:7],
    ]


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
