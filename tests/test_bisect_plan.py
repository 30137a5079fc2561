"""The bisection planner as data: which commit it builds next, and what it concludes,
with skips, merges (one first-parent step each) and a limit on builds."""

from __future__ import annotations

import math

import pytest

from kbo.orchestrator.bisect import Plan, Result, most_builds, plan

COMMITS = [f"c{n}" for n in range(1, 9)]  # A..B oldest first: c1 .. c8 (B)


def bisect(
    commits: list[str], truth: dict[str, Result], max_steps: int = 8
) -> tuple[Plan, list[str]]:
    """Run the planner to its end, each build answered from ``truth``; the verdict and
    the commits it built, in order."""
    known: dict[str, Result] = {}
    built: list[str] = []
    while True:
        step = plan(commits, known, len(built), max_steps)
        if step.done:
            return step, built
        assert step.next is not None and not step.pending
        built.append(step.next)
        known[step.next] = truth[step.next]


def broken_from(first_bad: int, commits: list[str] = COMMITS) -> dict[str, Result]:
    return {c: ("bad" if i + 1 >= first_bad else "good") for i, c in enumerate(commits)}


@pytest.mark.parametrize("first_bad", range(1, 9))
def test_finds_the_first_bad_commit_of_eight_in_at_most_log2_builds(first_bad: int) -> None:
    verdict, built = bisect(COMMITS, broken_from(first_bad))
    assert (verdict.ending, verdict.culprit) == ("found", f"c{first_bad}")
    assert len(built) <= math.ceil(math.log2(8)) == most_builds(8)
    assert "c8" not in built  # B is known bad: never rebuilt


def test_commit_five_of_eight_takes_three_builds_from_the_middle() -> None:
    verdict, built = bisect(COMMITS, broken_from(5))
    assert built == ["c4", "c6", "c5"]
    assert (verdict.good, verdict.bad, verdict.culprit) == ("c4", "c5", "c5")


def test_results_already_known_are_used_without_a_build() -> None:
    step = plan(COMMITS, {"c4": "good", "c6": "bad"}, 0, 8)
    assert step.next == "c5"
    verdict = plan(COMMITS, {"c4": "good", "c6": "bad", "c5": "bad"}, 1, 8)
    assert (verdict.ending, verdict.culprit, verdict.good) == ("found", "c5", "c4")


def test_a_skip_away_from_the_boundary_still_names_the_culprit() -> None:
    truth = broken_from(5) | {"c6": "skip"}
    verdict, built = bisect(COMMITS, truth)
    assert built == ["c4", "c6", "c5"]
    assert (verdict.ending, verdict.culprit, verdict.skipped) == ("found", "c5", ("c6",))


def test_after_a_skip_the_unknown_commit_nearest_the_middle_is_built() -> None:
    truth = broken_from(3) | {"c4": "skip"}
    verdict, built = bisect(COMMITS, truth)
    assert built[:2] == ["c4", "c3"]
    assert (verdict.ending, verdict.culprit, verdict.skipped) == ("found", "c3", ("c4",))


def test_only_skipped_commits_left_gives_the_range_not_a_culprit() -> None:
    truth = broken_from(5) | {"c4": "skip"}
    verdict, _ = bisect(COMMITS, truth)
    assert verdict.ending == "skipped"
    assert (verdict.good, verdict.bad, verdict.skipped, verdict.culprit) == (
        "c3",
        "c5",
        ("c4",),
        None,
    )


def test_a_pending_build_is_waited_for_not_doubled() -> None:
    step = plan(COMMITS, {"c4": "pending"}, 1, 8)
    assert (step.next, step.ending, step.pending) == (None, None, ("c4",))


def test_it_gives_up_after_max_steps_with_the_narrowed_range() -> None:
    verdict, built = bisect(COMMITS, broken_from(5), max_steps=1)
    assert built == ["c4"]
    assert (verdict.ending, verdict.good, verdict.bad) == ("gave-up", "c4", "c8")


def test_a_merge_on_the_first_parent_line_is_one_step() -> None:
    # B's first-parent line: c1, a merge of a side branch m (whose own commits are not
    # listed: --first-parent), c3, B. The merge brought the break.
    line = ["c1", "merge", "c3", "b"]
    truth: dict[str, Result] = {"c1": "good", "merge": "bad", "c3": "bad", "b": "bad"}
    verdict, built = bisect(line, truth)
    assert (verdict.ending, verdict.culprit) == ("found", "merge")
    assert len(built) <= most_builds(len(line))


def test_two_commits_need_one_build_and_one_commit_none() -> None:
    assert plan(["b"], {}, 0, 8).culprit == "b"
    assert plan(["a1", "b"], {}, 0, 8).next == "a1"
    assert (most_builds(1), most_builds(2), most_builds(8), most_builds(9)) == (0, 1, 3, 4)
