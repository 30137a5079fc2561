"""The staleness rules, on small fakes: pure logic, no git and no database."""

from __future__ import annotations

from kbo.orchestrator.staleness import Commit, assess
from kbo.orchestrator.state import JobResult as Result

HISTORY = [Commit("c3", 3000), Commit("c2", 2000), Commit("c1", 1000)]  # newest first
TWO = {("none", "generic"), ("none", "smp")}


def required(flavours: set[tuple[str, str]]):  # type: ignore[no-untyped-def]
    return lambda sha: flavours


def ok(commit: str, flavour: str, state: str = "succeeded") -> Result:
    return Result(commit, "alpha", "none", flavour, state)


def test_ok_when_every_flavour_built_at_head() -> None:
    standing = assess("alpha", HISTORY, required(TWO), [ok("c3", "generic"), ok("c3", "smp")])
    assert (standing.state, standing.commits_behind, standing.stale_since) == ("OK", 0, None)


def test_stale_counts_commits_and_dates_the_first_unbuilt_one() -> None:
    standing = assess("alpha", HISTORY, required(TWO), [ok("c1", "generic"), ok("c1", "smp")])
    assert standing.state == "STALE"
    assert standing.last_good == Commit("c1", 1000)
    assert standing.commits_behind == 2
    assert standing.stale_since == 2000


def test_a_partial_build_is_not_a_good_commit() -> None:
    results = [ok("c1", "generic"), ok("c1", "smp"), ok("c2", "generic")]
    standing = assess("alpha", HISTORY, required(TWO), results)
    assert standing.last_good == Commit("c1", 1000)


def test_a_flavour_added_at_head_keeps_the_arch_stale() -> None:
    def flavours_at(sha: str) -> set[tuple[str, str]]:
        return TWO | {("none", "legacy")} if sha == "c3" else TWO

    results = [ok("c3", "generic"), ok("c3", "smp"), ok("c2", "generic"), ok("c2", "smp")]
    standing = assess("alpha", HISTORY, flavours_at, results)
    assert (standing.state, standing.last_good, standing.commits_behind) == (
        "STALE",
        Commit("c2", 2000),
        1,
    )
    legacy = {f.name: f for f in standing.flavours}["alpha/none/legacy"]
    assert legacy.state == "NEVER"


def test_failing_names_the_commit_and_outranks_building() -> None:
    results = [
        ok("c1", "generic"),
        ok("c1", "smp"),
        ok("c2", "smp", "failed"),
        ok("c3", "smp", "queued"),
    ]
    standing = assess("alpha", HISTORY, required(TWO), results)
    assert (standing.state, standing.failing_commit) == ("FAILING", "c2")


def test_failing_at_names_the_first_commit_of_the_current_failure() -> None:
    """An unrelated commit on top of the breaking one fails too: the blame stays with the
    first failing commit, for the flavour and for the arch."""
    results = [
        ok("c1", "generic"),
        ok("c1", "smp"),
        ok("c2", "smp", "failed"),
        ok("c3", "smp", "failed"),
        ok("c3", "generic", "failed"),
    ]
    standing = assess("alpha", HISTORY, required(TWO), results)
    flavours = {f.name: f.failing_commit for f in standing.flavours}
    assert flavours == {"alpha/none/generic": "c3", "alpha/none/smp": "c2"}
    assert (standing.state, standing.failing_commit) == ("FAILING", "c2")


def test_a_later_success_clears_failing() -> None:
    results = [ok("c2", "smp", "failed"), ok("c3", "smp"), ok("c3", "generic")]
    assert assess("alpha", HISTORY, required(TWO), results).state == "OK"


def test_building_and_never() -> None:
    assert assess("alpha", HISTORY, required(TWO), [ok("c3", "smp", "running")]).state == "BUILDING"
    assert assess("alpha", HISTORY, required(TWO), []).state == "NEVER"


def test_results_of_other_arches_and_unknown_commits_are_ignored() -> None:
    results = [
        Result("c3", "hppa", "none", "generic", "succeeded"),
        ok("elsewhere", "generic"),
        ok("elsewhere", "smp"),
    ]
    assert assess("alpha", HISTORY, required(TWO), results).state == "NEVER"
