"""A job key's timeouts from the durations of its earlier successful builds (pure).

Per executor: ``FACTOR`` times the 95th percentile of its newest ``history`` successful
builds, once there are ``MIN_BUILDS`` of them; never below ``floor`` (a warm ccache makes
some builds far quicker than a cold one) and never above the recipe's own timeout (the
worker holds it to that too). A hung emulated build is then stopped in hours, not days.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

MIN_BUILDS = 3
FACTOR = 3


def p95(durations: list[float]) -> float:
    """The 95th percentile, nearest rank: the smallest duration at least 95 % of them
    do not exceed."""
    ranked = sorted(durations)
    return ranked[max(0, math.ceil(0.95 * len(ranked)) - 1)]


def from_history(
    durations: Iterable[tuple[str, float]],
    history: int,
    floor: int,
    recipe_limit: Callable[[str], int],
) -> dict[str, dict[str, int | str]]:
    """For each executor with ``MIN_BUILDS`` successes among ``durations`` (executor,
    seconds; newest first), its timeout in seconds and why; an executor whose history
    allows no less than the recipe is left out (the recipe's timeout applies)."""
    by_executor: dict[str, list[float]] = {}
    for executor, seconds in durations:
        kept = by_executor.setdefault(executor, [])
        if len(kept) < history:
            kept.append(max(0.0, seconds))
    found: dict[str, dict[str, int | str]] = {}
    for executor, kept in sorted(by_executor.items()):
        if history == 0 or len(kept) < MIN_BUILDS:
            continue
        top = p95(kept)
        seconds = max(floor, math.ceil(FACTOR * top))
        limit = recipe_limit(executor)
        if seconds >= limit:
            continue
        found[executor] = {
            "seconds": seconds,
            "why": (
                f"{FACTOR} x the p95 ({top:.0f} s) of the last {len(kept)} successful "
                f"{executor} builds of this job key, at least {floor} s "
                f"(timeout_min_seconds); the recipe allows {limit} s"
            ),
        }
    return found
