"""The build matrix: one job per (arch, featureset, flavour), named like Debian's make targets.

Everything here is pure. Reading ``debian/config`` lives in ``debian_config``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kbo.errors import UserError
from kbo.text import NAME

_NAME = re.compile(NAME)


def check_name(kind: str, value: object, where: str) -> str:
    """Return ``value`` if it is a safe Debian-style name, else raise a UserError."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise UserError(f"invalid {kind} name {value!r}", where)
    return value


def job_key(arch: str, featureset: str, flavour: str) -> str:
    """``<arch>_<featureset>_<flavour>``: a job's name everywhere (its make targets, log
    directory and mail), as the suffix of Debian's own ``binary-arch_`` targets."""
    return f"{arch}_{featureset}_{flavour}"


@dataclass(frozen=True)
class BuildJob:
    arch: str
    featureset: str
    flavour: str
    kernel_arch: str | None = None
    default_flavour: bool = False

    @property
    def key(self) -> str:
        return job_key(self.arch, self.featureset, self.flavour)

    @property
    def target(self) -> str:
        return f"binary-arch_{self.key}"

    @property
    def setup_target(self) -> str:
        return f"setup_{self.key}"

    def to_json(self) -> dict[str, object]:
        return {
            "arch": self.arch,
            "featureset": self.featureset,
            "flavour": self.flavour,
            "kernel_arch": self.kernel_arch,
            "default_flavour": self.default_flavour,
            "target": self.target,
            "setup_target": self.setup_target,
        }


@dataclass
class Matrix:
    """The jobs of one tree, and for each arch the file that declared it (for errors)."""

    jobs: list[BuildJob] = field(default_factory=list)
    declared_arches: dict[str, str] = field(default_factory=dict)

    @property
    def arches(self) -> list[str]:
        return sorted({job.arch for job in self.jobs})


@dataclass(frozen=True)
class Selection:
    """Glob filters from the command line; an empty tuple selects everything."""

    arches: tuple[str, ...] = ()
    featuresets: tuple[str, ...] = ()
    flavours: tuple[str, ...] = ()


def split_globs(values: Iterable[str] | None) -> tuple[str, ...]:
    """Accept ``--arch a,b --arch c`` alike."""
    return tuple(part for value in values or () for part in value.split(",") if part)


def select(matrix: Matrix, selection: Selection) -> list[BuildJob]:
    """Filter jobs by the selection; a pattern that matches nothing is a user error that
    lists the names there are."""
    for kind, patterns, names in (
        ("arch", selection.arches, {j.arch for j in matrix.jobs}),
        ("featureset", selection.featuresets, {j.featureset for j in matrix.jobs}),
        ("flavour", selection.flavours, {j.flavour for j in matrix.jobs}),
    ):
        for pattern in patterns:
            if not fnmatch.filter(names, pattern):
                raise UserError(
                    f"--{kind} {pattern!r} matches no {kind} in the matrix "
                    f"(it has: {', '.join(sorted(names)) or 'none'})"
                )
    return [
        job
        for job in matrix.jobs
        if _matches(job.arch, selection.arches)
        and _matches(job.featureset, selection.featuresets)
        and _matches(job.flavour, selection.flavours)
    ]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def representatives(jobs: Iterable[BuildJob]) -> list[BuildJob]:
    """One job per arch, for recipes whose result does not depend on the flavour.

    The arch's default flavour of featureset ``none``, else its first ``none`` flavour
    (the rule Debian uses for its quick builds), else its first job.
    """
    by_arch: dict[str, list[BuildJob]] = {}
    for job in jobs:
        by_arch.setdefault(job.arch, []).append(job)
    chosen = []
    for arch_jobs in by_arch.values():
        plain = [j for j in arch_jobs if j.featureset == "none"]
        default = [j for j in plain if j.default_flavour]
        chosen.append((default or plain or arch_jobs)[0])
    return chosen
