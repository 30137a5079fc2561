"""When a job that ended for the host's sake is tried again. Pure.

An ``infra-error`` (a mirror, the disk, an executor or the worker itself failed) is
retried after ``retry_seconds``, then twice that, and so on up to 64 times it,
``infra_retries`` times at most; then the job ends ``infra-error``. A ``dep-wait`` (the
host lacks the Build-Depends) waits the longest wait every time, without limit, until a
host that has them builds it. A ``failed`` build is the commit's: never retried here.
"""

from __future__ import annotations

from dataclasses import dataclass

from kbo.config import Config

DOUBLINGS = 6  # the longest wait is the first doubled this many times: 64 times it


@dataclass(frozen=True)
class RetryPolicy:
    infra_retries: int
    first_wait: float

    @classmethod
    def of(cls, config: Config) -> RetryPolicy:
        return cls(config.infra_retries, config.retry_seconds)

    def wait(self, outcome: str, infra_errors: int) -> float | None:
        """Seconds until the job's next attempt, or None: the job ends as it did.
        ``infra_errors`` counts the job's attempts that ended infra-error, this one too."""
        if outcome == "dep-wait":
            return self.first_wait * (1 << DOUBLINGS)
        if outcome == "infra-error" and 0 < infra_errors <= self.infra_retries:
            return self.first_wait * (1 << min(infra_errors - 1, DOUBLINGS))
        return None
