"""The package at a SOURCE: its changelog head and its checked build matrix, the one path
every command that reads a matrix takes."""

from __future__ import annotations

from dataclasses import dataclass

from kbo.config import Config
from kbo.errors import UserError
from kbo.packaging import dpkg_arch
from kbo.packaging.changelog import ChangelogHead, read_head
from kbo.packaging.debian_config import read_matrix
from kbo.packaging.matrix import Matrix
from kbo.packaging.tree import GitTree, open_tree


@dataclass(frozen=True)
class Package:
    source: str
    commit: str | None
    head: ChangelogHead
    matrix: Matrix
    gnu_types: dict[str, str | None]


def read_package(spec: str, rev: str | None = None, config: Config | None = None) -> Package:
    """The changelog head and matrix at SOURCE (and REV), every arch checked against dpkg."""
    with open_tree(spec, rev, config) as tree:
        head = read_head(tree)
        matrix = read_matrix(tree)
        commit = tree.commit if isinstance(tree, GitTree) else None
        label = tree.label
    gnu_types = dpkg_arch.gnu_types(matrix.declared_arches)
    for arch, where in matrix.declared_arches.items():
        if gnu_types.get(arch) is None:
            raise UserError(f"arch {arch!r} is unknown to dpkg", where)
    return Package(label, commit, head, matrix, gnu_types)
