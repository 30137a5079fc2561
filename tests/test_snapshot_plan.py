"""Snapshot planning (pure): stalest first, max_staleness, retries last, capacity."""

from __future__ import annotations

import pytest

from kbo.errors import UserError
from kbo.orchestrator.snapshot import Limit, Need, needs, parse_limits, plan
from kbo.orchestrator.staleness import Commit, Standing

DAY = 86400
NOW = 100 * DAY
# Five commits, one a day, newest first: c4 (today) ... c0 (four days ago).
HISTORY = [Commit(f"c{i}", NOW - (4 - i) * DAY) for i in range(4, -1, -1)]


def standing(arch: str, behind: int | None, state: str = "STALE") -> Standing:
    if behind == 0:
        return Standing(arch, "OK", HISTORY[0], 0, None)
    if behind is None:
        return Standing(arch, "NEVER", None, None, None)
    good = HISTORY[behind]
    return Standing(arch, state, good, behind, HISTORY[behind - 1].timestamp)


def one_job(*arches: str, failed: tuple[str, ...] = ()) -> dict[str, Need]:
    return {a: Need((f"{a}_none_x",), a in failed) for a in arches}


def queued(result: object) -> list[str]:
    return [d.arch for d in result.decisions if d.jobs]  # type: ignore[attr-defined]


def test_the_arches_furthest_behind_go_first() -> None:
    arches = [standing("amd64", 1), standing("alpha", 3), standing("hppa", 2), standing("mips", 3)]
    result = plan(
        arches, HISTORY, one_job("amd64", "alpha", "hppa", "mips"),
        in_flight={}, max_jobs=2, limits={}, now=NOW,
    )  # fmt: skip
    assert queued(result) == ["alpha", "mips"]
    waiting = {d.arch: d.why for d in result.decisions if d.waiting}
    assert set(waiting) == {"amd64", "hppa"}
    assert "waits for capacity" in waiting["hppa"]


def test_never_built_counts_as_the_whole_history() -> None:
    arches = [standing("alpha", 4), standing("hppa", None)]
    result = plan(
        arches, HISTORY, one_job("alpha", "hppa"), in_flight={}, max_jobs=1, limits={}, now=NOW
    )
    assert queued(result) == ["hppa"]
    assert result.decisions[1].behind == 5


def test_equal_commits_behind_the_longer_stale_goes_first() -> None:
    old = Standing("mips", "STALE", HISTORY[2], 2, NOW - 10 * DAY)
    new = Standing("alpha", "STALE", HISTORY[2], 2, NOW - DAY)
    result = plan(
        [new, old], HISTORY, one_job("alpha", "mips"), in_flight={}, max_jobs=1, limits={}, now=NOW
    )
    assert queued(result) == ["mips"]


def test_an_arch_over_max_staleness_is_always_built_and_says_why() -> None:
    arches = [standing("alpha", 4), standing("hppa", 4), standing("mips", 1)]
    limits = parse_limits(["mips:0", "*:10"], "kbo.toml")
    result = plan(
        arches, HISTORY, one_job("alpha", "hppa", "mips"),
        in_flight={}, max_jobs=2, limits=limits, now=NOW,
    )  # fmt: skip
    assert sorted(queued(result)) == ["alpha", "mips"]  # mips first, then the stalest
    over = plan(
        arches, HISTORY, one_job("alpha", "hppa", "mips"),
        in_flight={"alpha": 5}, max_jobs=2, limits=limits, now=NOW,
    )  # fmt: skip
    assert queued(over) == ["mips"]  # even with no capacity left
    mips = next(d for d in result.decisions if d.arch == "mips")
    assert mips.over_limit == "1 commit behind, over max_staleness 0"
    assert "always built" in mips.why


def test_days_limit() -> None:
    assert Limit(days=2).exceeded(1, 3 * DAY) == "stale 3.0 days, over max_staleness 2d"
    assert Limit(days=2).exceeded(1, DAY) is None
    assert parse_limits(["hppa:7d", "alpha:5"], "x") == {
        "hppa": Limit(days=7),
        "alpha": Limit(commits=5),
    }


@pytest.mark.parametrize("entry", ["alpha", "alpha:", "alpha:five", "Alpha:5", "alpha:5w"])
def test_malformed_limits_name_the_entry(entry: str) -> None:
    with pytest.raises(UserError, match="max_staleness entry") as error:
        parse_limits([entry], "/etc/kbo/kbo.toml")
    assert "/etc/kbo/kbo.toml" in str(error.value)


def test_a_failure_at_head_is_retried_only_with_spare_capacity() -> None:
    arches = [standing("alpha", 3, "FAILING"), standing("hppa", 1)]
    needs_ = one_job("alpha", "hppa", failed=("alpha",))
    limits = {"*": Limit(commits=0)}
    tight = plan(arches, HISTORY, needs_, in_flight={}, max_jobs=1, limits=limits, now=NOW)
    assert queued(tight) == ["hppa"]
    roomy = plan(arches, HISTORY, needs_, in_flight={}, max_jobs=5, limits=limits, now=NOW)
    assert queued(roomy) == ["alpha", "hppa"]
    assert "retried with spare capacity" in roomy.decisions[0].why


def test_jobs_in_flight_use_up_the_capacity() -> None:
    arches = [standing("alpha", 2), standing("hppa", 2)]
    result = plan(
        arches,
        HISTORY,
        one_job("alpha", "hppa"),
        in_flight={"alpha": 1, "hppa": 1},
        max_jobs=2,
        limits={},
        now=NOW,
    )
    assert result.budget == 0
    assert queued(result) == []
    unlimited = plan(
        arches,
        HISTORY,
        one_job("alpha", "hppa"),
        in_flight={"alpha": 1, "hppa": 1},
        max_jobs=None,
        limits={},
        now=NOW,
    )
    assert queued(unlimited) == ["alpha", "hppa"]


def test_an_arch_is_split_when_capacity_ends_inside_it() -> None:
    arches = [standing("mips", 2)]
    need = {"mips": Need(("mips_none_4kc-malta", "mips_none_5kc-malta", "mips_none_octeon"), False)}
    result = plan(arches, HISTORY, need, in_flight={}, max_jobs=2, limits={}, now=NOW)
    assert result.jobs == ["mips_none_4kc-malta", "mips_none_5kc-malta"]
    assert result.decisions[0].waiting == ("mips_none_octeon",)


def test_needs_leave_out_what_succeeded_or_is_in_flight_at_head() -> None:
    jobs = {
        "alpha": [("alpha", "none", "alpha-generic"), ("alpha", "none", "alpha-smp")],
        "hppa": [("hppa", "none", "parisc")],
        "mips": [("mips", "none", "4kc-malta"), ("mips", "none", "octeon")],
    }
    states = {
        ("alpha", "none", "alpha-generic"): "succeeded",
        ("alpha", "none", "alpha-smp"): "running",
        ("mips", "none", "octeon"): "failed",
    }
    found = needs(jobs, states)
    assert found["alpha"] == Need((), False)
    assert found["hppa"] == Need(("hppa_none_parisc",), False)
    assert found["mips"] == Need(("mips_none_4kc-malta", "mips_none_octeon"), True)


def test_the_digest_flags_what_the_planner_forces_a_never_built_arch_included() -> None:
    from pathlib import Path

    from kbo.config import Config
    from kbo.orchestrator.mail import digest
    from kbo.orchestrator.standings import Standings

    arches = [standing("alpha", None), standing("hppa", 1), standing("mips", 0)]
    found = Standings(Path("/r"), "c4", "kbuild-smoke", arches, {}, HISTORY, "6.1.176-1")
    config = Config(max_staleness=("*:3d",), branch="main")
    mail = digest.compose(config, found, NOW)
    assert mail is not None
    subject, text = mail
    assert subject.endswith("2 arches not built at c4, 1 over max_staleness")
    assert "alpha      NEVER    never built, 5 commits behind" in text
    assert "OVER LIMIT: stale 4.0 days, over max_staleness 3d" in text
    forced = plan(arches, HISTORY, one_job("alpha", "hppa"), in_flight={}, max_jobs=1,
                  limits=parse_limits(config.max_staleness, "x"), now=NOW)  # fmt: skip
    assert [d.arch for d in forced.decisions if d.over_limit] == ["alpha"]


def test_a_job_that_failed_at_head_retry_failed_times_is_left_for_a_new_commit() -> None:
    jobs = {"mips": [("mips", "none", "4kc-malta"), ("mips", "none", "octeon")]}
    states = {("mips", "none", "4kc-malta"): "failed", ("mips", "none", "octeon"): "failed"}
    failed_builds = {("mips", "none", "4kc-malta"): 1, ("mips", "none", "octeon"): 2}
    once = needs(jobs, states, failed_builds, retry_failed=1)["mips"]
    assert once == Need((), False, ("mips_none_4kc-malta", "mips_none_octeon"))
    twice = needs(jobs, states, failed_builds, retry_failed=2)["mips"]
    assert twice == Need(("mips_none_4kc-malta",), True, ("mips_none_octeon",))
    result = plan(
        [standing("mips", 2, "FAILING")], HISTORY, {"mips": once},
        in_flight={}, max_jobs=None, limits={}, now=NOW,
    )  # fmt: skip
    assert queued(result) == []
    assert (
        result.decisions[0].why == "failed at HEAD: not retried until a new commit (retry_failed)"
    )


def test_an_arch_no_worker_serves_gets_one_pending_job_outside_the_budget() -> None:
    """alpha's hosts are gone: a snapshot queues one of its jobs, and nothing more while
    that one waits; its queued job takes none of ``max_jobs`` from the arches that build."""
    arches = [standing("alpha", 3), standing("hppa", 2)]
    two = {
        "alpha": Need(("alpha_none_alpha-generic", "alpha_none_alpha-smp"), False),
        "hppa": Need(("hppa_none_parisc",), False),
    }
    first = plan(
        arches, HISTORY, two, in_flight={}, max_jobs=1, limits={}, now=NOW,
        unserved={"alpha"},
    )  # fmt: skip
    alpha, hppa = first.decisions
    assert alpha.jobs == ("alpha_none_alpha-generic",) and alpha.no_worker
    assert alpha.waiting == ("alpha_none_alpha-smp",) and "no live worker" in alpha.why
    assert hppa.jobs == ("hppa_none_parisc",)
    later = plan(
        arches, HISTORY, {"alpha": Need(("alpha_none_alpha-smp",), False)},
        in_flight={"alpha": 1}, max_jobs=1, limits={}, now=NOW, unserved={"alpha"},
    )  # fmt: skip
    assert later.budget == 1 and later.jobs == []
    assert "its queued job waits for one" in later.decisions[0].why
