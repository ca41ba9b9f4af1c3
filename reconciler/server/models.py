"""The API's answers and request bodies as pydantic models: what `/openapi.json` describes.

Every answer of `/api/...` is one of these, so the description cannot drift from the code. The
run fields are exactly `reconciler.views.run_row`'s (the CLI's `--format json` contract), and
the schedule fields `views.schedule_row`'s; models add fields, never rename or drop one.
Times are ISO 8601 strings with their offset, as the CLI prints them.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator

from reconciler.model import Cause
from reconciler.statuses import Status

Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
# Names a run reports (metrics, outputs): what a tuner or a DAG's ref can name.
REPORT_NAME = r"^[A-Za-z0-9_.\-/]{1,255}$"
_NAMES: dict[str, Any] = {"propertyNames": {"pattern": REPORT_NAME}}


def _names(values: dict[str, Any]) -> dict[str, Any]:
    wrong = [name for name in values if not re.fullmatch(REPORT_NAME, name)]
    if wrong:
        shown = ", ".join(repr(n[:40]) for n in sorted(wrong)[:5])
        raise ValueError(f"names are 1 to 255 of A-Z a-z 0-9 _ . - /, not {shown}")
    return values


class ErrorOut(BaseModel):
    """Every error: `error` says what went wrong in a sentence; `detail` what it concerns (the
    parameter, the run, the body's problems), or null."""

    error: str
    detail: Any = None


class RunOut(BaseModel):
    name: str
    op: str
    kind: str | None
    status: Status
    cause: Cause
    cause_id: str
    commit: str | None
    parent: str | None
    backend: str
    created_at: Time
    started_at: Time | None
    finished_at: Time | None


class HistoryOut(BaseModel):
    status: Status
    at: Time
    reason: str | None
    message: str | None


class RunDetailOut(RunOut):
    history: list[HistoryOut]
    uuid: str
    spec_hash: str
    namespace: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    node: str | None = None  # a DAG op's name in its DAG
    trial_index: int | None = None  # a matrix trial's index
    container: str | None = None  # dag or matrix: the run has children
    spec: dict[str, Any] | None = None  # as compiled when the run was created


class ChildOut(RunOut):
    """A DAG op or matrix trial with what sets it apart: its node or index, params, results."""

    node: str | None
    trial_index: int | None
    params: dict[str, Any]
    outputs: dict[str, Any]
    metrics: dict[str, float]  # the last value of each metric it reported


class MetricPointOut(BaseModel):
    step: int
    value: float
    at: Time


class RunOutputsOut(BaseModel):
    run: str
    params: dict[str, Any]
    outputs: dict[str, Any]  # the latest value of each output reported (file or API)
    metrics: dict[str, list[MetricPointOut]]  # every value of each metric, in order


class LocatedErrorOut(BaseModel):
    file: str | None
    line: int | None
    column: int | None
    message: str
    location: str  # path:line:col, as `reconciler validate` prints it


class AppliedOut(BaseModel):
    sha: str
    committed_at: Time
    recorded_at: Time
    valid: bool | None


class RepoOut(BaseModel):
    name: str
    url: str
    branch: str
    interval: float | None  # seconds between polls (None: not configured in this daemon)
    head: str | None  # the branch's head at the last successful fetch
    last_applied: AppliedOut | None
    ready: bool
    problem: str | None  # why not ready
    last_error: str | None  # the last fetch's error, if it failed
    last_fetch_at: Time | None  # the last successful fetch


class CommitOut(BaseModel):
    repo: str
    sha: str
    branch: str
    committed_at: Time
    recorded_at: Time
    valid: bool | None
    errors: list[LocatedErrorOut]


class PlanActionOut(BaseModel):
    action: str
    op: str
    run: str | None
    reason: str


class CommitStatusOut(BaseModel):
    context: str
    state: str
    description: str | None
    target_url: str | None
    created_at: Time
    posted_at: Time | None
    superseded: bool
    attempts: int
    last_error: str | None


class CommitDetailOut(CommitOut):
    plan: list[PlanActionOut] | None  # None: applied before plans were recorded
    runs: list[RunOut]
    statuses: list[CommitStatusOut]


class LatestRunOut(BaseModel):
    name: str
    status: Status
    at: Time


class OpOut(BaseModel):
    op: str
    repo: str
    path: str
    name: str
    mode: str
    valid: bool
    invalid_since: Time | None
    removed_at: Time | None
    spec_hash: str | None  # the last spec that compiled
    commit: str | None  # where it compiled last
    latest: LatestRunOut | None
    next_tick: Time | None


class ScheduleOut(BaseModel):
    op: str
    kind: str | None
    schedule: dict[str, Any] | None
    timezone: str
    next_ticks: list[Time]
    runs: int
    last_tick: Time | None
    repo: str
    concurrency: str | None
    starting_deadline: float | None
    registered_at: Time | None
    missed: int  # ticks missed (daemon down beyond the starting deadline)
    skipped: int  # ticks skipped (concurrency forbid, dependsOnPast)


class TickOut(BaseModel):
    outcome: str  # fired, skipped or missed
    tick_at: Time
    until: Time | None  # a missed row stands for `count` ticks up to here
    count: int
    reason: str | None
    message: str | None


class SubscriptionOut(BaseModel):
    op: str  # the subscriber: runs when...
    source: str  # ...a run of this operation...
    kinds: list[str]  # ...enters one of these


class OpDetailOut(OpOut):
    spec: dict[str, Any] | None  # as compiled at the applied commit (or its newest run's)
    schedule: ScheduleOut | None
    ticks: list[TickOut]  # missed and skipped ticks, newest first
    subscriptions: list[SubscriptionOut]
    runs: list[RunOut]  # newest first (more: /api/runs?op=...)


class AcceptedOut(BaseModel):
    accepted: str


class QueuedOut(BaseModel):
    queued: str


class StoppingOut(BaseModel):
    stopping: str


class RetryOut(BaseModel):
    retry: str
    of: str


class RecordedOut(BaseModel):
    run: str
    metrics: int  # values recorded
    outputs: int


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricsIn(_Strict):
    """Metric values at one step: `{"metrics": {"loss": 0.3}, "step": 7}`. Without a step,
    each metric's next one."""

    metrics: dict[str, StrictFloat] = Field(min_length=1, max_length=1000, json_schema_extra=_NAMES)
    step: StrictInt | None = Field(default=None, ge=0, le=10**15)

    @field_validator("metrics")
    @classmethod
    def _finite(cls, metrics: dict[str, float]) -> dict[str, float]:
        _names(metrics)
        bad = [name for name, value in metrics.items() if not math.isfinite(value)]
        if bad:
            raise ValueError(f"not a finite number: {', '.join(sorted(bad)[:5])}")
        return metrics


class OutputsIn(_Strict):
    """Outputs (any JSON value each): `{"outputs": {"model": "s3://...", "accuracy": 0.91}}`.
    A later report of a name replaces its value; numbers are also kept as metric values."""

    outputs: dict[str, Any] = Field(min_length=1, max_length=1000, json_schema_extra=_NAMES)

    @field_validator("outputs")
    @classmethod
    def _finite(cls, outputs: dict[str, Any]) -> dict[str, Any]:
        def bad(value: Any) -> bool:
            if isinstance(value, float):
                return not math.isfinite(value)
            if isinstance(value, dict):
                return any(bad(v) for v in value.values())
            if isinstance(value, list):
                return any(bad(v) for v in value)
            return False

        _names(outputs)
        wrong = sorted(name for name, value in outputs.items() if bad(value))
        if wrong:
            raise ValueError(f"not a finite number (NaN, Infinity) in: {', '.join(wrong[:5])}")
        return outputs


__all__ = [
    "AcceptedOut",
    "AppliedOut",
    "ChildOut",
    "CommitDetailOut",
    "CommitOut",
    "CommitStatusOut",
    "ErrorOut",
    "HistoryOut",
    "LatestRunOut",
    "LocatedErrorOut",
    "MetricPointOut",
    "MetricsIn",
    "OpDetailOut",
    "OpOut",
    "OutputsIn",
    "PlanActionOut",
    "QueuedOut",
    "RecordedOut",
    "RepoOut",
    "RetryOut",
    "RunDetailOut",
    "RunOut",
    "RunOutputsOut",
    "ScheduleOut",
    "StoppingOut",
    "SubscriptionOut",
    "TickOut",
]
