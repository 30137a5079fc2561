"""From SOURCE to a checked build matrix: the one path every command that plans takes."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator import dpkg_arch
from orchestrator.changelog import ChangelogHead, read_head
from orchestrator.debian_config import read_matrix
from orchestrator.errors import UserError
from orchestrator.matrix import Matrix
from orchestrator.sources import GitTree, open_source


@dataclass(frozen=True)
class Plan:
    source: str
    commit: str | None
    head: ChangelogHead
    matrix: Matrix
    gnu_types: dict[str, str | None]


def load_plan(spec: str, rev: str | None = None) -> Plan:
    """Read changelog head and matrix from SOURCE, and check every arch against dpkg."""
    with open_source(spec, rev) as tree:
        head = read_head(tree)
        matrix = read_matrix(tree)
        commit = tree.commit if isinstance(tree, GitTree) else None
        label = tree.label
    gnu_types = dpkg_arch.gnu_types(matrix.declared_arches)
    for arch, where in matrix.declared_arches.items():
        if gnu_types.get(arch) is None:
            raise UserError(f"arch {arch!r} is unknown to dpkg", where)
    return Plan(label, commit, head, matrix, gnu_types)
