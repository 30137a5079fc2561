"""Where every tracked arch stands against HEAD: the one computation behind ``kbo status``,
the digest, the status page and snapshot planning.

It reads only the jobs near HEAD: commits are read newest first, in chunks that double,
and an arch stops being read once a commit where all its flavours built is found (the
older results cannot change its standing). An arch is therefore read as far back as it
is behind, and the cost does not grow with the length of the history.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kbo import recipes
from kbo.config import Config
from kbo.errors import UserError
from kbo.orchestrator import live_workers
from kbo.orchestrator.matrices import Matrices
from kbo.orchestrator.staleness import Commit, Flavour, Standing, assess
from kbo.orchestrator.state import JobResult, StateReader
from kbo.orchestrator.state.records import CANCELLED, HOST_PROBLEMS
from kbo.packaging import repository
from kbo.packaging.matrix import BuildJob, representatives

FIRST_CHUNK = 16
LARGEST_CHUNK = 4096


@dataclass(frozen=True)
class Standings:
    repo: Path
    head: str
    recipe: str
    arches: list[Standing]
    jobs_at_head: dict[str, list[BuildJob]]  # the tracked arches' jobs at HEAD, by arch
    history: list[Commit]
    version: str  # the package version at HEAD, from debian/changelog
    # What kbo recorded at HEAD for the tracked arches: (arch, featureset, flavour) -> state.
    states_at_head: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # Per arch, the jobs of this recipe queued or running, at any commit.
    in_flight: dict[str, int] = field(default_factory=dict)
    unserved: frozenset[str] = frozenset()  # tracked arches no live worker serves


def compute(config: Config, recipe: str, state: StateReader, *, fetch: bool = True) -> Standings:
    """HEAD of the tracked branch, and every tracked arch's standing against it.

    ``fetch`` False reads a mirrored URL as last fetched (the coordinator refreshing its page).
    """
    if not config.repository:
        raise UserError("no repository configured (set repository in kbo.toml or KBO_REPOSITORY)")
    repo = repository.local_repository(config.repository, config, fetch=fetch)
    head = repository.resolve(repo, config.branch)
    history = [Commit(sha, ts) for sha, ts in repository.history(repo, head)]
    per_arch = recipes.scope_of(recipe, config.recipe_dirs) == "arch"
    source = repository.source_id(config.repository)
    matrices = Matrices(repo, source, state)

    @functools.cache
    def jobs_at(sha: str) -> dict[str, list[BuildJob]]:
        jobs = matrices.at(sha)[1]
        by_arch: dict[str, list[BuildJob]] = {}
        for job in representatives(jobs) if per_arch else jobs:
            by_arch.setdefault(job.arch, []).append(job)
        return by_arch

    def flavours_at(arch: str, sha: str) -> set[Flavour]:
        return {(j.featureset, j.flavour) for j in jobs_at(sha).get(arch, [])}

    at_head = jobs_at(head)
    tracked = list(config.tracked_arches) or sorted(at_head)
    for arch in tracked:
        if arch not in at_head:
            raise UserError(
                f"tracked arch {arch!r} has no jobs in the matrix at {head[:12]}", config.source
            )
    results = _results_near_head(state, source, recipe, tracked, history, flavours_at)
    arches = [
        assess(arch, history, functools.partial(flavours_at, arch), results) for arch in tracked
    ]
    states_at_head = {
        (r.arch, r.featureset, r.flavour): r.state for r in results if r.commit == head
    }
    for standing in arches:
        _explain_failure(state, source, recipe, standing)
        _explain_host_problems(state, source, recipe, head, states_at_head, standing)
        _note_cancelled(state, source, recipe, head, states_at_head, standing)
    return Standings(
        repo,
        head,
        recipe,
        arches,
        {a: at_head[a] for a in tracked},
        history,
        matrices.at(head)[0],
        states_at_head,
        state.in_flight(source, recipe),
        live_workers.unserved(config, state, tracked, time.time()),
    )


def _explain_failure(state: StateReader, source: str, recipe: str, arch: Standing) -> None:
    """The first error and log of the failure FAILING AT names, for the arch and each of
    its failing flavours (the arch's is its oldest failing flavour's)."""
    oldest: Standing | None = None
    for flavour in arch.flavours:
        if flavour.state != "FAILING" or flavour.failing_commit is None:
            continue
        name, featureset, flavour_name = flavour.name.split("/")
        attempt = state.attempt_at(
            source, recipe, name, featureset, flavour_name, flavour.failing_commit
        )
        if attempt is not None:
            flavour.first_error, flavour.log = attempt.first_error, attempt.log_path
        if flavour.failing_commit == arch.failing_commit and oldest is None:
            oldest = flavour
    if oldest is not None:
        arch.first_error, arch.log = oldest.first_error, oldest.log


def _explain_host_problems(
    state: StateReader,
    source: str,
    recipe: str,
    head: str,
    states_at_head: dict[tuple[str, str, str], str],
    arch: Standing,
) -> None:
    """Why flavours are not built at HEAD when their host is to blame (infra-error,
    dep-wait): the arch carries its first such flavour's."""
    for flavour in arch.flavours:
        name, featureset, flavour_name = flavour.name.split("/")
        if states_at_head.get((name, featureset, flavour_name)) not in HOST_PROBLEMS:
            continue
        flavour.host_problem = state.host_problem_at(
            source, recipe, name, featureset, flavour_name, head
        )
        if arch.host_problem is None:
            arch.host_problem = flavour.host_problem


def _note_cancelled(
    state: StateReader,
    source: str,
    recipe: str,
    head: str,
    states_at_head: dict[tuple[str, str, str], str],
    arch: Standing,
) -> None:
    """Flavours whose job at HEAD a maintainer cancelled, and by whom."""
    for flavour in arch.flavours:
        name, featureset, flavour_name = flavour.name.split("/")
        if states_at_head.get((name, featureset, flavour_name)) != CANCELLED:
            continue
        attempt = state.attempt_at(source, recipe, name, featureset, flavour_name, head)
        flavour.cancelled = (attempt.first_error if attempt else None) or "cancelled"
        if arch.cancelled is None:
            arch.cancelled = flavour.cancelled


def _results_near_head(
    state: StateReader,
    source: str,
    recipe: str,
    arches: Sequence[str],
    history: Sequence[Commit],
    flavours_at: Callable[[str, str], set[Flavour]],
) -> list[JobResult]:
    """The results of each arch from HEAD back to where older ones cannot change its
    standing: past its newest complete build, and past the newest success of every
    flavour it has at HEAD. An arch that never got there is read to the end."""
    pending = {a for a in arches if state.has_results(source, recipe, a)}
    needed = {a: flavours_at(a, history[0].sha) for a in pending}
    succeeded: dict[str, set[Flavour]] = {a: set() for a in pending}
    complete: set[str] = set()
    found: list[JobResult] = []
    start, size = 0, FIRST_CHUNK
    while pending and start < len(history):
        chunk = [c.sha for c in history[start : start + size]]
        rows = state.results_at(source, recipe, sorted(pending), chunk)
        found += rows
        done: dict[tuple[str, str], set[Flavour]] = {}
        for r in rows:
            if r.state == "succeeded":
                done.setdefault((r.arch, r.commit), set()).add((r.featureset, r.flavour))
                succeeded[r.arch].add((r.featureset, r.flavour))
        for arch in sorted(pending):
            if arch not in complete and _complete_in(arch, chunk, done, flavours_at):
                complete.add(arch)
            if arch in complete and needed[arch] <= succeeded[arch]:
                pending.discard(arch)
        start, size = start + size, min(size * 2, LARGEST_CHUNK)
    return found


def _complete_in(
    arch: str,
    chunk: Sequence[str],
    done: dict[tuple[str, str], set[Flavour]],
    flavours_at: Callable[[str, str], set[Flavour]],
) -> bool:
    """Whether some commit of the chunk built every flavour the arch had there. Commits go
    newest first and stop at the first complete one, as ``assess`` reads them, so no
    older commit's matrix is read."""
    for sha in chunk:
        built = done.get((arch, sha))
        if built and (need := flavours_at(arch, sha)) and need <= built:
            return True
    return False
