"""The planner's output: what to do, to which operation, and why, as plain values.

An `Action` carries its payload (the run to submit, the run to stop, the schedule to register),
so applying a plan needs nothing but the plan and the adapters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from reconciler.errors import Located
from reconciler.model import ObservedObject, OpKey, RunRequest
from reconciler.plan.diff import FieldChange


class ActionKind(StrEnum):
    CREATE = "create"  # submit a new run
    NOOP = "noop"  # in sync; kept in the plan so a reader sees every operation was considered
    UPDATE = "update"  # converge a long-running run in place to a new spec
    STOP = "stop"  # stop an active run of an operation removed from Git (prune policy)
    DELETE = "delete"  # remove a long-running run of an operation removed from Git (prune policy)
    PRUNE = "prune"  # remove leftover objects of finished or orphaned runs (prune policy)
    REGISTER_SCHEDULE = "register_schedule"
    UPDATE_SCHEDULE = "update_schedule"
    REMOVE_SCHEDULE = "remove_schedule"
    SUBSCRIBE = "subscribe"  # new or changed event subscription
    UNSUBSCRIBE = "unsubscribe"
    ADOPT = "adopt"  # ours in the cluster (labels) but not in the DB: record it
    RETRY = "retry"  # submit again a long-running run the backend could not schedule
    DRIFT = "drift"  # changed or gone in the cluster: re-applied (with `run`) or reported
    INVALID = "invalid"  # the file fails to compile; its operations keep their last good state


# Actions that end something that runs: never for an operation whose file is invalid.
DESTRUCTIVE = frozenset({ActionKind.STOP, ActionKind.DELETE, ActionKind.PRUNE})
# Actions that change nothing: a plan made only of these is converged.
PASSIVE = frozenset({ActionKind.NOOP, ActionKind.INVALID})


@dataclass(frozen=True)
class Action:
    action: ActionKind
    op: OpKey
    kind: str  # run kind (job, service, dag, ...), or "file" for invalid files
    reason: str
    run: RunRequest | None = None  # create, update, drift re-apply
    target: str | None = None  # the run acted on: stop, delete, prune, adopt, drift
    diff: tuple[FieldChange, ...] = ()  # update, update_schedule
    schedule: Mapping[str, Any] | None = None  # register/update_schedule
    ticks: tuple[datetime, ...] = ()  # the next fire times of a registered or changed schedule
    events: tuple[Mapping[str, Any], ...] = ()  # subscribe
    spec_hash: str = ""  # the desired spec hash the action converges to (schedules, subscriptions)
    errors: tuple[Located, ...] = ()  # invalid
    observed: ObservedObject | None = None  # adopt; drift reported, not healed (self_heal off)
    not_before: datetime | None = None  # a noop waiting for this time (the next retry of a failed run)

    @property
    def changes_something(self) -> bool:
        return self.action not in PASSIVE

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action.value,
            "op": str(self.op),
            "kind": self.kind,
            "reason": self.reason,
        }
        if self.run is not None:
            out["run"] = self.run.name
        if self.target is not None:
            out["target"] = self.target
        if self.diff:
            out["diff"] = [c.to_json() for c in self.diff]
        if self.ticks:
            out["ticks"] = [t.isoformat() for t in self.ticks]
        return out
