"""Open what the user names as SOURCE: a directory, a ``.dsc``, or a git commit.

Each gives a ``DebianTree``: read access to the files under ``debian/`` that kbo reads.
A directory is read as it is on disk, inside a git checkout too (uncommitted edits
included); git objects are read only when a revision is asked for.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kbo.config import Config
from kbo.errors import UserError
from kbo.packaging import download, dsc, repository
from kbo.packaging.debian_config.tree import DebianTree


def wanted(path: str) -> bool:
    """The files kbo reads below ``debian/``: config ``defines`` and the changelog.

    The kernel configs beside them are megabytes that planning never needs.
    """
    name = path.rsplit("/", 1)[-1]
    return path == "changelog" or (
        path.startswith("config/") and name in ("defines", "defines.toml")
    )


@dataclass
class DirectoryTree:
    root: Path

    @property
    def label(self) -> str:
        return str(self.root)

    def read(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def where(self, path: str) -> str:
        return str(self.root / path)


@dataclass
class GitTree:
    repo: Path
    rev: str
    commit: str
    files: dict[str, bytes]
    base: str  # where debian/ is in the commit's tree: 'debian/', 'x/debian/'

    @property
    def label(self) -> str:
        return f"{self.repo}@{self.commit[:12]}"

    def read(self, path: str) -> bytes | None:
        return self.files.get(path)

    def where(self, path: str) -> str:
        return f"{self.rev}:{self.base}{path}"


@contextmanager
def open_tree(
    spec: str, rev: str | None = None, config: Config | None = None
) -> Iterator[DebianTree]:
    """Yield the tree for SOURCE; temporary files (from a .dsc) go when the block ends.
    A .dsc's debian tarball is read beside it, else (given ``config``) from its mirror.

    A directory is read from disk unless ``rev`` is given: then from git objects at that
    revision, at the same place in the commit's tree as the directory in the checkout.
    """
    path = Path(spec)
    if not path.exists():
        raise UserError("no such file or directory", spec)
    if path.is_file():
        if rev is not None:
            raise UserError("--rev applies to a git repository, not a file", spec)
        if path.suffix != ".dsc":
            raise UserError("not a .dsc, a directory or a git repository", spec)
        with tempfile.TemporaryDirectory(prefix="kbo-dsc-") as tmp:
            yield _dsc_tree(path, Path(tmp), config)
        return
    if rev is not None:
        if not repository.is_repository(path):
            raise UserError("--rev given, but this is not a git repository", spec)
        yield git_tree(path, rev)
        return
    yield DirectoryTree(_debian_dir(path))


def git_tree(repo: Path, rev: str) -> GitTree:
    """The files kbo reads of ``debian/`` at ``rev``. ``repo`` may be a directory inside a
    work tree: the checkout, a directory holding ``debian/``, or ``debian/`` itself."""
    commit = repository.resolve(repo, rev)
    prefix = repository.prefix(repo)
    for base in (f"{prefix}debian/", prefix) if prefix else ("debian/",):
        files = _read_below(repo, commit, base)
        if files:
            return GitTree(repo, rev, commit, files, base)
    raise UserError(f"no debian/ directory at {rev}", str(repo))


def _read_below(repo: Path, commit: str, base: str) -> dict[str, bytes]:
    def want(path: str) -> bool:
        return wanted(path.removeprefix(base))

    blobs = repository.read_blobs(repo, commit, base, want)
    return {path.removeprefix(base): data for path, data in blobs.items()}


def _debian_dir(path: Path) -> Path:
    if (path / "debian").is_dir():
        return path / "debian"
    if (path / "config").is_dir() or (path / "changelog").is_file():
        return path
    if repository.is_bare(path):
        raise UserError("a git repository without a working tree: give --rev", str(path))
    raise UserError("contains no debian/ directory", str(path))


def _dsc_tree(path: Path, tmp: Path, config: Config | None) -> DirectoryTree:
    info = dsc.read_dsc(path)
    tarball = info.debian_tarball
    if config is None:
        tarball_path = path.parent / tarball.name
        dsc.verify(tarball_path, tarball, str(path))
    else:
        tarball_path = download.source_file(
            path, info, tarball, config.mirror, config.cache_path / "downloads"
        )
    return DirectoryTree(dsc.unpack_debian(tarball_path, tmp, wanted))
