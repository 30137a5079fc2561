"""What reaches the queues, and how often: each attempt published once, superseded jobs,
failures not rebuilt for ever, lost leases counted per request."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kbo.config import Config
from kbo.messaging.app import make_app
from kbo.orchestrator.coordinator import Coordinator
from kbo.orchestrator.retries import RetryPolicy
from kbo.orchestrator.state import JobSpec, Run, State

SHA = "a" * 40


def specs(count: int, commit: str = SHA) -> list[JobSpec]:
    return [JobSpec("/srv/linux", commit, "noop", "alpha", "none", f"f{i}") for i in range(count)]


def test_a_sweep_during_a_submission_publishes_none_of_its_attempts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease sweep runs in its own thread: one that runs while a submission is still
    publishing finds nothing left to publish, so 50 jobs make 50 messages."""
    config = Config(state_dir=str(tmp_path))
    coordinator = Coordinator(config, make_app(config))
    sent: list[int] = []
    swept = threading.Event()

    def publish_build(app: object, attempt_id: int, arch: str) -> None:
        sent.append(attempt_id)
        if not swept.is_set():  # the first message: a sweep runs now, in its own thread
            swept.set()
            sweeper = threading.Thread(target=coordinator.sweep)
            sweeper.start()
            sweeper.join()

    monkeypatch.setattr("kbo.orchestrator.coordinator.messaging.publish_build", publish_build)
    attempts = coordinator.state.record_run(Run("r", "me", "", "/srv/linux", "main", SHA,
                                                "noop", "1"), specs(50))  # fmt: skip
    coordinator.publish(attempts)
    assert sorted(sent) == sorted(attempts) and len(sent) == 50
    coordinator.sweep()  # and later sweeps find nothing to publish either
    assert len(sent) == 50


def test_an_attempt_whose_message_could_not_be_sent_is_published_by_the_next_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(state_dir=str(tmp_path))
    coordinator = Coordinator(config, make_app(config))
    sent: list[int] = []

    def broken(app: object, attempt_id: int, arch: str) -> None:
        raise ConnectionError("the broker is down")

    monkeypatch.setattr("kbo.orchestrator.coordinator.messaging.publish_build", broken)
    run = Run("r", "me", "", "/srv/linux", "main", SHA, "noop", "1")
    attempts = coordinator.state.record_run(run, specs(3))
    with pytest.raises(ConnectionError):
        coordinator.publish(attempts)
    monkeypatch.setattr(
        "kbo.orchestrator.coordinator.messaging.publish_build",
        lambda app, attempt_id, arch: sent.append(attempt_id),
    )
    coordinator.sweep()
    assert sorted(sent) == sorted(attempts)


def _ask(state: State, run_id: str) -> list[int]:
    run = Run(run_id, "me", "", "/srv/linux", "main", SHA, "noop", "1")
    return state.record_run(run, specs(1))


def _lose(state: State, attempt: int, max_attempts: int = 3) -> list[int]:
    """The attempt is claimed, then its worker dies: its lease lapses, the sweep runs."""
    assert state.claim(attempt, "t", "w", "h", 60).accepted
    state.db.execute("UPDATE attempts SET lease_expires = 0 WHERE id = ?", (attempt,))
    return state.expire_leases(max_attempts)


def test_lost_leases_count_from_the_last_request_and_then_the_job_ends_lost(
    tmp_path: Path,
) -> None:
    """max_attempts 3: a job two runs asked for again after it failed is still given three
    leases; when all three lapse, it ends lost (its worker's fault, not the commit's)."""
    state = State(tmp_path / "kbo.sqlite", RetryPolicy(3, 30))
    (attempt,) = _ask(state, "r1")
    for again in ("r2", "r3"):
        assert state.claim(attempt, "t", "w", "h", 60).accepted
        assert state.finish(attempt, "t", {"outcome": "failed", "first_error": "x"}).accepted
        (attempt,) = _ask(state, again)
    assert state.attempt(attempt).number == 3  # type: ignore[union-attr]
    (attempt,) = _lose(state, attempt)
    (attempt,) = _lose(state, attempt)
    assert _lose(state, attempt) == []
    job = state.job_of_attempt(attempt)
    assert job is not None and job.state == "lost"
    summary = state.run("r3")
    assert summary is not None and summary.jobs[0].ended
    problem = state.host_problem_at("/srv/linux", "noop", "alpha", "none", "f0", SHA)
    assert problem is not None and problem.state == "lost"  # kbo status: HOST PROBLEM
    assert problem.error == "lost: worker w stopped renewing its lease"
    # Asked for again, it is tried again, with three leases of its own.
    (attempt,) = _ask(state, "r4")
    assert len(_lose(state, attempt)) == 1


def test_a_newer_commit_supersedes_older_queued_jobs_of_its_key_but_no_running_one(
    tmp_path: Path,
) -> None:
    state = State(tmp_path / "kbo.sqlite", RetryPolicy(3, 30))
    c1, c2, c3, head, branch = ("1" * 40, "2" * 40, "3" * 40, "4" * 40, "b" * 40)

    def ask(run_id: str, commit: str, older: tuple[str, ...] = ()) -> list[int]:
        run = Run(run_id, "me", "", "/srv/linux", "main", commit, "noop", "1")
        return state.record_run(run, specs(2, commit), supersede=older)

    queued_c1 = ask("r1", c1)
    running_c2, queued_c2 = ask("r2", c2, (c1,))
    assert state.claim(running_c2, "t", "w", "h", 60).accepted
    on_a_branch = ask("r3", branch)  # not an ancestor of HEAD: left alone
    ask("r4", c3, (c2, c1))
    to_build = ask("r5", head, (c3, c2, c1))

    states = {
        (r["commit_sha"], r["flavour"]): (r["state"], r["a_state"])
        for r in state.db.execute(
            "SELECT j.commit_sha, j.flavour, j.state, a.state AS a_state FROM jobs j"
            " JOIN attempts a ON a.id = j.current_attempt"
        )
    }
    assert states == {
        (c1, "f0"): ("superseded", "superseded"),
        (c1, "f1"): ("superseded", "superseded"),
        (c2, "f0"): ("running", "running"),  # it finishes, and still counts
        (c2, "f1"): ("superseded", "superseded"),
        (branch, "f0"): ("queued", "queued"),
        (branch, "f1"): ("queued", "queued"),
        (c3, "f0"): ("superseded", "superseded"),
        (c3, "f1"): ("superseded", "superseded"),
        (head, "f0"): ("queued", "queued"),
        (head, "f1"): ("queued", "queued"),
    }
    for attempt in (*queued_c1, queued_c2):
        verdict = state.claim(attempt, "t", "w", "h", 60)
        assert not verdict.accepted and "superseded" in verdict.reason
    assert sorted(state.unpublished(republish_after=3600)) == sorted(on_a_branch + to_build)
    summary = state.run("r1")
    assert summary is not None
    assert [(j.job.state, j.ended) for j in summary.jobs] == [("superseded", True)] * 2
    assert state.finish(running_c2, "t", {"outcome": "succeeded"}).accepted
