"""The one view of a packaging tree that the readers need: files under ``debian/``."""

from __future__ import annotations

from typing import Protocol


class DebianTree(Protocol):
    @property
    def label(self) -> str:
        """How to name the whole tree: a path, or repository@commit."""

    def read(self, path: str) -> bytes | None:
        """Bytes of ``debian/<path>``, or None when there is no such file."""

    def where(self, path: str) -> str:
        """How to name ``debian/<path>`` in an error message."""
