"""Where every tracked arch stands against HEAD: the one computation behind ``kbo status``,
the digest, the status page and snapshot planning."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import recipes
from orchestrator import gitrepo, repository
from orchestrator.config import Config
from orchestrator.errors import UserError
from orchestrator.matrix import BuildJob, representatives
from orchestrator.plan import Plan, load_plan
from orchestrator.staleness import Commit, Result, Standing, assess
from orchestrator.state import State


@dataclass(frozen=True)
class Standings:
    repo: Path
    head: str
    recipe: str
    arches: list[Standing]
    jobs_at_head: dict[str, list[BuildJob]]  # the tracked arches' jobs at HEAD, by arch
    history: list[Commit]
    version: str  # the package version at HEAD, from debian/changelog
    results: list[dict[str, Any]] = field(default_factory=list)  # kbo's jobs of this recipe


@functools.lru_cache(maxsize=256)
def _plan_at(repo: str, sha: str) -> Plan:
    """Commits never change, so their plans cache safely (the coordinator lives long)."""
    return load_plan(repo, sha)


def _jobs_at(repo: str, sha: str, per_arch: bool) -> dict[str, list[BuildJob]]:
    """The matrix at one commit, by arch; one job per arch for recipes of scope arch."""
    jobs = _plan_at(repo, sha).matrix.jobs
    by_arch: dict[str, list[BuildJob]] = {}
    for job in representatives(jobs) if per_arch else jobs:
        by_arch.setdefault(job.arch, []).append(job)
    return by_arch


def compute(config: Config, recipe: str, state: State, *, fetch: bool = True) -> Standings:
    """HEAD of the tracked branch, and every tracked arch's standing against it.

    ``fetch`` False reads a mirrored URL as last fetched (the coordinator refreshing its page).
    """
    if not config.repository:
        raise UserError("no repository configured (set repository in kbo.toml or KBO_REPOSITORY)")
    repo = repository.local_repository(config.repository, config, fetch=fetch)
    head = gitrepo.resolve(repo, config.branch)
    history = [Commit(sha, ts) for sha, ts in gitrepo.history(repo, head)]
    per_arch = recipes.scope_of(recipe, config.recipe_dirs) == "arch"

    def flavours_at(arch: str, sha: str) -> set[tuple[str, str]]:
        return {(j.featureset, j.flavour) for j in _jobs_at(str(repo), sha, per_arch).get(arch, [])}

    at_head = _jobs_at(str(repo), head, per_arch)
    tracked = list(config.tracked_arches) or sorted(at_head)
    for arch in tracked:
        if arch not in at_head:
            raise UserError(
                f"tracked arch {arch!r} has no jobs in the matrix at {head[:12]}", config.source
            )
    rows = state.results(repository.source_id(config.repository), recipe)
    results = [
        Result(r["commit_sha"], r["arch"], r["featureset"], r["flavour"], r["state"]) for r in rows
    ]
    arches = [
        assess(arch, history, functools.partial(flavours_at, arch), results) for arch in tracked
    ]
    jobs = {a: at_head[a] for a in tracked}
    version = _plan_at(str(repo), head).head.version
    return Standings(repo, head, recipe, arches, jobs, history, version, rows)
