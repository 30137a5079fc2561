"""The build matrix at each commit of the tracked source, read once.

Commits never change, so neither does their matrix. It is looked up in memory, then in
the state database; only a commit never seen before is read from git (``debian/config``
and the changelog parsed, every arch checked with dpkg). The coordinator keeps what it
reads in the database, so no reader parses an old commit again.
"""

from __future__ import annotations

import functools
from pathlib import Path

from kbo.orchestrator.state import State, StateReader
from kbo.packaging.matrix import BuildJob


@functools.lru_cache(maxsize=256)
def _read(repo: str, commit: str) -> tuple[str, tuple[BuildJob, ...]]:
    from kbo.packaging.package import read_package  # python-debian: only for a new commit

    package = read_package(repo, commit)
    return package.head.version, tuple(package.matrix.jobs)


class Matrices:
    def __init__(self, repo: Path, source: str, state: StateReader) -> None:
        self.repo = repo
        self.source = source
        self.state = state
        self._seen: dict[str, tuple[str, list[BuildJob]]] = {}

    def at(self, commit: str) -> tuple[str, list[BuildJob]]:
        """The package version and the jobs of the matrix at ``commit``."""
        if commit in self._seen:
            return self._seen[commit]
        cached = self.state.matrix(self.source, commit)
        if cached is not None:
            found = cached.version, [BuildJob(*fields) for fields in cached.jobs]
        else:
            version, jobs = _read(str(self.repo), commit)
            found = version, list(jobs)
            if isinstance(self.state, State):
                self.state.keep_matrix(
                    self.source,
                    commit,
                    version,
                    [
                        (j.arch, j.featureset, j.flavour, j.kernel_arch, j.default_flavour)
                        for j in jobs
                    ],
                )
        self._seen[commit] = found
        return found
