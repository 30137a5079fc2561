"""Read the build matrix from a package's own ``debian/config``, in either era's format."""

from __future__ import annotations

from kbo.errors import UserError
from kbo.packaging.debian_config.ini import read_ini_matrix
from kbo.packaging.debian_config.toml import read_toml_matrix
from kbo.packaging.debian_config.tree import DebianTree
from kbo.packaging.matrix import Matrix

__all__ = ["DebianTree", "read_matrix"]


def read_matrix(tree: DebianTree) -> Matrix:
    """TOML ``defines.toml`` (6.7 and later) wins over INI ``defines`` (up to 6.6)."""
    if tree.read("config/defines.toml") is not None:
        return read_toml_matrix(tree)
    if tree.read("config/defines") is not None:
        return read_ini_matrix(tree)
    raise UserError("no defines.toml or defines: not a Debian kernel package", tree.where("config"))
