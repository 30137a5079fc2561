"""A worker takes the coordinator's reply to a claim as it would take user input: a
forged or garbled one builds nothing and writes nothing, and says why in one line."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest

from kbo.config import Config
from kbo.messaging.app import make_app
from kbo.workers import build
from kbo.workers.claim import MAX_LEASE_SECONDS, BadClaim, checked_claim

SHA = "0123456789abcdef0123456789abcdef01234567"
JOB = {
    "id": 7,
    "source": "/srv/kbo/linux",
    "commit_sha": SHA,
    "recipe": "kbuild-smoke",
    "arch": "alpha",
    "featureset": "none",
    "flavour": "alpha-generic",
    "kernel_arch": "alpha",
    "state": "running",
    "current_attempt": 9,
    "created_at": 1700000000.0,
    "updated_at": 1700000001.0,
    "name": "alpha_none_alpha-generic",
    "attempt": 1,
}
REPLY = {"accepted": True, "reason": "", "job": JOB, "lease_seconds": 300}


def forged(**changes: Any) -> dict[str, Any]:
    """The good reply with some fields changed: ``job__arch=...`` changes one of the
    job's; the value ``...`` removes the field."""
    reply = copy.deepcopy(REPLY)
    for key, value in changes.items():
        place, name = (reply["job"], key[5:]) if key.startswith("job__") else (reply, key)
        if value is ...:
            del place[name]
        else:
            place[name] = value
    return reply


FORGED: dict[str, tuple[object, str]] = {
    "not-a-dict": (["accepted", True], "not a dict but list"),
    "none": (None, "not a dict but NoneType"),
    "accepted-missing": (forged(accepted=...), "accepted is missing"),
    "accepted-a-string": (forged(accepted="yes"), "accepted is 'yes', not true or false"),
    "accepted-one": (forged(accepted=1), "accepted is 1, not true or false"),
    "reason-with-escape-codes": (
        forged(accepted=False, job=None, reason="\x1b]0;owned\x07"),
        "reason '\\x1b]0;owned\\x07' is not one line of printable text",
    ),
    "reason-over-lines": (forged(reason="a\nb"), "reason 'a\\nb' is not one line"),
    "reason-a-list": (forged(reason=["x"]), "reason ['x'] is not one line"),
    "refused-with-a-job": (forged(accepted=False), "a refused claim comes with a job"),
    "lease-missing": (forged(lease_seconds=...), "lease_seconds is missing"),
    "lease-negative": (forged(lease_seconds=-1), "lease_seconds -1 is not a number of seconds"),
    "lease-zero": (forged(lease_seconds=0), "lease_seconds 0 is not"),
    "lease-true": (forged(lease_seconds=True), "lease_seconds True is not"),
    "lease-a-string": (forged(lease_seconds="300"), "lease_seconds '300' is not"),
    "lease-nan": (forged(lease_seconds=float("nan")), "lease_seconds nan is not"),
    "lease-infinite": (forged(lease_seconds=float("inf")), "lease_seconds inf is not"),
    "lease-a-year": (forged(lease_seconds=365 * 86400), "lease_seconds 31536000 is not"),
    "job-missing": (forged(job=...), "job is missing"),
    "job-not-a-dict": (forged(job="alpha_none_alpha-generic"), "job is 'alpha_none_alpha-"),
    "job-a-list": (forged(job=[JOB]), "job is [{'id': 7, "),
    "accepted-without-a-job": (forged(job=None), "job is None, not a dict"),
    "arch-path-traversal": (
        forged(job__arch="../../etc"),
        "job.arch '../../etc' is not a name ([a-z0-9][a-z0-9.+-]*, at most 64 characters)",
    ),
    "arch-absolute": (forged(job__arch="/etc"), "job.arch '/etc' is not a name"),
    "arch-with-nul": (forged(job__arch="alpha\0"), "job.arch 'alpha\\x00' is not a name"),
    "arch-with-newline": (forged(job__arch="alpha\n"), "job.arch 'alpha\\n' is not a name"),
    "arch-upper-case": (forged(job__arch="Alpha"), "job.arch 'Alpha' is not a name"),
    "arch-a-list": (forged(job__arch=["alpha"]), "job.arch ['alpha'] is not a name"),
    "arch-a-dict": (forged(job__arch={"a": 1}), "job.arch {'a': 1} is not a name"),
    "arch-too-long": (forged(job__arch="a" * 65), "job.arch 'aaaaaaaaaaaaaaaaaaaaaa"),
    "arch-missing": (forged(job__arch=...), "job.arch is missing"),
    "featureset-empty": (forged(job__featureset=""), "job.featureset '' is not a name"),
    "featureset-none": (forged(job__featureset=None), "job.featureset None is not a name"),
    "flavour-underscore": (forged(job__flavour="a_b"), "job.flavour 'a_b' is not a name"),
    "flavour-slash": (forged(job__flavour="x/../../y"), "job.flavour 'x/../../y' is not"),
    "recipe-path": (forged(job__recipe="../../tmp/evil"), "job.recipe '../../tmp/evil' is not"),
    "recipe-number": (forged(job__recipe=1), "job.recipe 1 is not a name"),
    "kernel-arch-path": (forged(job__kernel_arch="../x"), "job.kernel_arch '../x' is not a name"),
    "kernel-arch-false": (forged(job__kernel_arch=False), "job.kernel_arch False is not a name"),
    "kernel-arch-missing": (forged(job__kernel_arch=...), "job.kernel_arch is missing"),
    "commit-head": (forged(job__commit_sha="HEAD"), "job.commit_sha 'HEAD' is not 40 lowercase"),
    "commit-39-hex": (forged(job__commit_sha=SHA[:39]), "job.commit_sha '0123456789abcdef0123"),
    "commit-41-hex": (forged(job__commit_sha=SHA + "0"), f"job.commit_sha '{SHA}0' is not"),
    "commit-upper-case": (forged(job__commit_sha=SHA.upper()), "job.commit_sha '0123456789ABC"),
    "commit-option": (
        forged(job__commit_sha="--output=/etc/passwd"),
        "job.commit_sha '--output=/etc/passwd' is not 40 lowercase hex digits",
    ),
    "commit-with-newline": (forged(job__commit_sha=SHA + "\n"), f"job.commit_sha '{SHA}\\n'"),
    "commit-an-int": (forged(job__commit_sha=123), "job.commit_sha 123 is not 40 lowercase"),
    "source-empty": (forged(job__source=""), "job.source '' is neither a URL nor an absolute"),
    "source-relative": (forged(job__source="linux"), "job.source 'linux' is neither"),
    "source-an-option": (forged(job__source="--upload-pack=x"), "job.source '--upload-pack=x'"),
    "source-scp-style-option": (
        forged(job__source="-oProxyCommand@x:y"),
        "job.source '-oProxyCommand@x:y' is neither a URL nor an absolute path",
    ),
    "source-ext-transport": (forged(job__source="ext::sh -c x"), "job.source 'ext::sh -c x'"),
    "source-with-nul": (forged(job__source="/srv/a\0b"), "job.source '/srv/a\\x00b' is neither"),
    "source-with-newline": (forged(job__source="/srv/a\nb"), "job.source '/srv/a\\nb' is"),
    "source-a-list": (forged(job__source=["/srv"]), "job.source ['/srv'] is neither"),
    "source-too-long": (forged(job__source="/" + "a" * 4096), "job.source '/aaaaaaa"),
    "attempt-true": (forged(job__attempt=True), "job.attempt True is not a whole number"),
    "attempt-a-string": (forged(job__attempt="1"), "job.attempt '1' is not a whole number"),
    "attempt-zero": (forged(job__attempt=0), "job.attempt 0 is not a whole number from 1"),
    "attempt-negative": (forged(job__attempt=-3), "job.attempt -3 is not"),
    "attempt-a-float": (forged(job__attempt=1.0), "job.attempt 1.0 is not"),
    "attempt-missing": (forged(job__attempt=...), "job.attempt is missing"),
}


@pytest.mark.parametrize("case", FORGED, ids=list(FORGED))
def test_a_forged_reply_is_refused_naming_its_field(case: str) -> None:
    reply, says = FORGED[case]
    with pytest.raises(BadClaim) as refused:
        checked_claim(reply)
    message = str(refused.value)
    assert message.startswith(f"the coordinator's reply to a claim: {says}"), message
    assert len(message.splitlines()) == 1 and len(message) < 300, message


def test_an_accepted_reply_gives_only_the_checked_fields_of_its_job() -> None:
    claim = checked_claim(copy.deepcopy(REPLY))
    assert (claim.accepted, claim.reason, claim.lease_seconds) == (True, "", 300)
    assert claim.job == {
        "source": "/srv/kbo/linux",
        "commit_sha": SHA,
        "recipe": "kbuild-smoke",
        "arch": "alpha",
        "featureset": "none",
        "flavour": "alpha-generic",
        "kernel_arch": "alpha",
        "attempt": 1,
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"job__kernel_arch": None},
        {"job__source": "https://salsa.debian.org/kernel-team/linux.git"},
        {"job__source": "git@salsa.debian.org:kernel-team/linux.git"},
        {"job__source": "/home/maint/src/linux dev"},
        {"job__featureset": "rt"},
        {"job__flavour": "4kc-malta"},
        {"job__flavour": "armmp-lpae"},
        {"job__arch": "a" * 64},
        {"job__attempt": 3},
        {"lease_seconds": 0.5},
        {"lease_seconds": MAX_LEASE_SECONDS},
    ],
)
def test_replies_the_coordinator_sends_are_accepted(changes: dict[str, Any]) -> None:
    claim = checked_claim(forged(**changes))
    assert claim.job is not None
    for key, value in changes.items():
        assert (claim.job[key[5:]] if key.startswith("job__") else claim.lease_seconds) == value


def test_an_empty_kernel_arch_is_none() -> None:
    claim = checked_claim(forged(job__kernel_arch=""))
    assert claim.job is not None and claim.job["kernel_arch"] is None


def test_a_refused_claim_has_no_job() -> None:
    claim = checked_claim(
        {"accepted": False, "reason": "attempt 3 is superseded", "job": None, "lease_seconds": 300}
    )
    assert (claim.accepted, claim.reason, claim.job) == (False, "attempt 3 is superseded", None)


def test_the_coordinators_own_reply_passes(tmp_path: Path) -> None:
    """What Coordinator.claim really sends, for a job as a submission records it."""
    from kbo.orchestrator.coordinator import Coordinator
    from kbo.orchestrator.state import JobSpec, Run

    config = Config(state_dir=str(tmp_path))
    coordinator = Coordinator(config, make_app(config))
    run = Run("r", "me", "", "/srv/linux", "main", SHA, "noop", "1")
    (attempt,) = coordinator.state.record_run(
        run, [JobSpec("/srv/linux", SHA, "noop", "alpha", "none", "alpha-generic", "alpha")]
    )
    claim = checked_claim(coordinator.claim(attempt, "token", "w", "h"))
    assert claim.job is not None and claim.job["attempt"] == 1
    again = checked_claim(coordinator.claim(attempt, "token", "w", "h"))
    assert again.job == claim.job  # the same delivery asking again: its answer was lost
    other = checked_claim(coordinator.claim(attempt, "another delivery", "w", "h"))
    assert other.job is None and "is running, not queued" in other.reason


class _Recorder:
    """Stands in for the broker: the forged reply to the claim, and every send kept."""

    def __init__(self, reply: object) -> None:
        self.reply, self.sent = reply, []

    def call_until_answered(
        self, app: object, task: str, *args: object, **kw: object
    ) -> tuple[bool, object]:
        assert task == "kbo.claim"
        return True, self.reply

    def send(self, app: object, task: str, *args: object, **kw: object) -> str:
        self.sent.append(task)
        return "id"


@pytest.mark.parametrize("case", ["arch-path-traversal", "commit-head", "job-not-a-dict"])
def test_the_worker_builds_nothing_and_writes_nothing_for_a_forged_reply(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    broker = _Recorder(FORGED[case][0])
    monkeypatch.setattr(build.messaging, "call_until_answered", broker.call_until_answered)
    monkeypatch.setattr(build.messaging, "send", broker.send)
    config = Config(state_dir=str(tmp_path / "state"), cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="kbo.worker"):
        build.BuildAttempt(object(), config, 42, "token", "worker@host").run()  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []  # no state, log, job or cache directory
    assert broker.sent == []  # no heartbeat, no report of a build that never was
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith(
        f"attempt 42: nothing built: the coordinator's reply to a claim: {FORGED[case][1]}"
    )
    assert len(record.getMessage().splitlines()) == 1
