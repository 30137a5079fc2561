"""Loaded by Python at start-up when this folder is on PYTHONPATH: with
KBO_TEST_RAISE_AT set, a worker raises an unexpected exception (RuntimeError) as it
enters the build stage whose name starts with that value. kbo itself has no such hook."""

import os

_STAGE = os.environ.get("KBO_TEST_RAISE_AT")

if _STAGE:
    from typing import Any

    from kbo.workers import build

    _enter = build.BuildAttempt._stage

    def _stage(self: build.BuildAttempt, out: Any, name: str) -> None:
        _enter(self, out, name)
        if name.startswith(str(_STAGE)):
            raise RuntimeError(f"injected as the stage {name!r} began")

    build.BuildAttempt._stage = _stage  # type: ignore[method-assign]
