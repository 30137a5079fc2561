"""kbo's own record of runs, jobs, attempts and mail, in SQLite with WAL.

All SQL lives in this package: ``schema`` (tables, version, migrations), ``reader``
(read-only, indexed queries for status, the digest and mail), ``writer`` (the
coordinator's writes, each one transaction). Records travel as the dataclasses of
``records``.
"""

from kbo.orchestrator.state.reader import StateReader
from kbo.orchestrator.state.records import (
    Alert,
    Attempt,
    Bisection,
    CachedMatrix,
    HostProblem,
    Job,
    JobResult,
    JobSpec,
    OutboxMail,
    Run,
    RunJob,
    RunSummary,
    WorkerInfo,
    WorkerView,
)
from kbo.orchestrator.state.writer import Cancellation, GiveBack, State, Transaction, Verdict

__all__ = [
    "Alert",
    "Attempt",
    "Bisection",
    "CachedMatrix",
    "Cancellation",
    "GiveBack",
    "HostProblem",
    "Job",
    "JobResult",
    "JobSpec",
    "OutboxMail",
    "Run",
    "RunJob",
    "RunSummary",
    "State",
    "StateReader",
    "Transaction",
    "Verdict",
    "WorkerInfo",
    "WorkerView",
]
