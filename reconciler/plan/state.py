"""What the tracking DB knows, as a plain snapshot the planner can read without a session.

The tracking adapter fills these from its tables; tests build them by hand. Only the fields the
planner decides on are here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.model import OpKey
from reconciler.statuses import DONE, RUN_STATUSES, Status

# Polyaxon's finished statuses (and the `done` trigger): the run's objects are no longer expected
# to be working.
DONE_STATUSES = frozenset(s.value for s in DONE) | {Status.DONE.value}
# Statuses in which the run's objects must exist in the cluster; `unknown` is excluded because
# it is what a run becomes once its objects were found missing (reported once, not forever).
LIVE_STATUSES = frozenset(s.value for s in RUN_STATUSES - DONE - {Status.UNKNOWN})


@dataclass(frozen=True)
class TrackedRun:
    name: str
    op: OpKey
    kind: str
    spec_hash: str
    status: str
    created_at: datetime
    cause: str = "commit"
    # The spec the run was created (or last applied) with, for the field diff of an update.
    effective: Mapping[str, Any] | None = field(default=None, compare=False)
    cause_id: str = ""
    finished_at: datetime | None = None
    reason: str | None = None  # why it entered its current status (e.g. UnsupportedKind)
    updated_at: datetime | None = None  # when it entered its current status
    retries: int = 0  # times an unschedulable run was submitted again (history rows with reason Retry)
    # Handed to its backend (it has a backend reference). A run recorded while the backend was
    # unreachable is not: it has no objects yet, which is no drift; `resume` starts it.
    submitted: bool = True

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    @property
    def live(self) -> bool:
        """Its objects must exist in the cluster: submitted, and neither finished nor unknown."""
        return self.submitted and self.status in LIVE_STATUSES


@dataclass(frozen=True)
class TrackedSchedule:
    op: OpKey
    spec_hash: str
    schedule: Mapping[str, Any]


@dataclass(frozen=True)
class TrackedSubscription:
    op: OpKey
    spec_hash: str
    events: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class TrackedState:
    runs: tuple[TrackedRun, ...] = ()
    schedules: Mapping[OpKey, TrackedSchedule] = field(default_factory=dict)
    subscriptions: Mapping[OpKey, TrackedSubscription] = field(default_factory=dict)
