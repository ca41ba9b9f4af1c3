"""Building the runs the orchestrator creates, from stored specs, as pure functions.

Every run made here is named by `model.run_name(op, spec hash, cause id)` with a cause id that is a
function of what caused it (tick instant, upstream transition, DAG run and op, matrix run and
index, run and hook), so making the same run twice gives the same name and the tracking DB's
(op, cause) constraint keeps one. Children get op keys of their own (`<op>.<dag op>`,
`<op>.trial`, `<op>.hook<i>`), so the planner, which reads top-level runs per op, never mistakes
them for runs of the operation Git declares.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import TypeAdapter

from reconciler.model import Cause, OpKey, RunRequest, run_name, spec_hash
from reconciler.scheduling.ticks import DEFAULT_STARTING_DEADLINE, ConcurrencyPolicy, ScheduleSpec, from_spec
from reconciler.spec.compose import compose
from reconciler.spec.polyaxonfile import Polyaxonfile
from reconciler.spec.schedules import Schedule
from reconciler.statuses import Status
from reconciler.tracking import Run, TrackingError, Tx

_SCHEDULE: TypeAdapter[Any] = TypeAdapter(Schedule)

DAG = "dag"
MATRIX = "matrix"


class RecordRun(Protocol):
    """The one way a run comes into being (`reconciler.apply.Applier.record`), inside the caller's
    transaction: the run row, its first status (or a final one, for a run that never starts),
    its commit status in the outbox, and for a child its operation row."""

    def __call__(
        self,
        request: RunRequest,
        now: dt.datetime,
        *,
        session: Tx,
        parent: str | None = None,
        status: Status = Status.CREATED,
        final: tuple[Status, str, str] | None = None,
        node: str | None = None,
        trial_index: int | None = None,
        meta: Mapping[str, Any] | None = None,
        child_mode: str | None = None,
    ) -> tuple[Run, bool]: ...


@dataclass(frozen=True)
class Recording:
    """One run for `RecordRuns` (`Applier.record_many`): the request, and how it starts (see
    `RecordRun`; `final` records a run that never starts straight into that status)."""

    request: RunRequest
    parent: str | None = None
    status: Status = Status.CREATED
    final: tuple[Status, str, str] | None = None
    node: str | None = None
    trial_index: int | None = None
    meta: Mapping[str, Any] | None = None
    child_mode: str | None = None
    reason: str | None = None
    message: str | None = None
    spec_known: bool = True


class RecordRuns(Protocol):
    """`RecordRun` for a batch (`reconciler.apply.Applier.record_many`), in the caller's
    transaction, in a few statements whatever its size (the fence asked once per repo): for each
    run, in order, (the run, whether it is new) or why it could not be recorded."""

    def __call__(
        self, items: Sequence[Recording], now: dt.datetime, *, session: Tx
    ) -> list[tuple[Run, bool] | TrackingError]: ...


@dataclass(frozen=True)
class ScheduleOptions:
    """Per-operation settings a schedule or subscription runs with (from the repo config)."""

    tz: str = "UTC"
    concurrency: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    starting_deadline: dt.timedelta = DEFAULT_STARTING_DEADLINE
    namespace: str = "default"


def default_options(op: OpKey) -> ScheduleOptions:
    return ScheduleOptions()


def schedule_spec(schedule: Mapping[str, Any], tz: str) -> ScheduleSpec:
    """The pure scheduler's view of a schedule section as written (camelCase, JSON values)."""
    return from_spec(_SCHEDULE.validate_python(dict(schedule)), tz)


def run_kind(effective: Mapping[str, Any]) -> str:
    run = effective.get("run")
    return str(run.get("kind", "")) if isinstance(run, dict) else ""


def container_of(effective: Mapping[str, Any]) -> str | None:
    """`matrix` for an op with a matrix (whatever it runs), `dag` for a DAG, else None."""
    if effective.get("matrix"):
        return MATRIX
    return DAG if run_kind(effective) == DAG else None


def request_for(
    op: OpKey,
    effective: dict[str, Any],
    *,
    cause: Cause,
    cause_id: str,
    commit: str,
    namespace: str,
    params: Mapping[str, Any] | None = None,
    hash_: str | None = None,
) -> RunRequest:
    h = hash_ or spec_hash(effective)
    return RunRequest(
        name=run_name(op, h, cause_id),
        op=op,
        kind=run_kind(effective),
        spec_hash=h,
        effective=effective,
        cause=cause,
        cause_id=cause_id,
        commit=commit,
        namespace=namespace,
        params=dict(params or {}),
    )


def with_params(effective: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """`effective` with `params` set as plain values (replacing refs they were resolved from)."""
    out = copy.deepcopy(dict(effective))
    if params:
        current = dict(out.get("params") or {})
        for name, value in params.items():
            current[name] = {"value": value}
        out["params"] = current
    return out


def child_key(parent: OpKey, suffix: str) -> OpKey:
    return OpKey(parent.repo, parent.path, f"{parent.name}.{suffix}")


def dag_operations(effective: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    run = effective.get("run") or {}
    return {str(o["name"]): o for o in run.get("operations") or [] if isinstance(o, dict) and "name" in o}


def dag_node_effective(parent: Mapping[str, Any], node: str) -> dict[str, Any]:
    """A DAG op's effective spec, composed from the parent's stored DAG (components inlined).

    Raises `ComposeError` or a pydantic `ValidationError` for an op that cannot be composed.
    """
    run = parent.get("run") or {}
    components = {
        str(c["name"]): Polyaxonfile.model_validate(c)
        for c in run.get("components") or []
        if isinstance(c, dict) and c.get("name")
    }
    spec = Polyaxonfile.model_validate(dag_operations(parent)[node])
    effective = compose(spec, is_dag_node=True, components=components)
    effective.setdefault("name", node)
    return effective


def trial_effective(parent: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A matrix trial: the operation without its matrix (nor schedule or events), with the trial's params."""
    base = {k: v for k, v in parent.items() if k not in ("matrix", "schedule", "events")}
    return with_params(base, params)


def fallback_seed(run: str) -> int:
    """A matrix without `seed` gets one derived from its run's name: stable across restarts, and
    within the stored column's range (a signed 32-bit INTEGER on PostgreSQL)."""
    return int(hashlib.sha256(run.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


__all__ = [
    "DAG",
    "MATRIX",
    "RecordRun",
    "RecordRuns",
    "Recording",
    "ScheduleOptions",
    "child_key",
    "container_of",
    "dag_node_effective",
    "dag_operations",
    "default_options",
    "fallback_seed",
    "request_for",
    "run_kind",
    "schedule_spec",
    "trial_effective",
    "with_params",
]
