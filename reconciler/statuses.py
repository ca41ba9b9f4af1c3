"""Run statuses, the transitions between them, and what each means for a commit status.

Spec, planner, backends, tracking and forge all reason about run statuses; keeping the vocabulary
and its rules in one pure module (no I/O, no DB) means they cannot disagree. The 20 values are
Polyaxon 2.18's; the grouping follows Polyaxon's run lifecycle. The transition rules are ours:
Polyaxon's server enforces its own, but its client package only exposes the groups.

Rules, in words:
- a done run (succeeded, failed, upstream_failed, stopped, skipped) never changes again;
- `created` and `resuming` are only ever the first status of a run; `done` is never a run status
  at all (Polyaxon uses it as an event/hook trigger meaning "any done status");
- the normal path only moves forward (created -> compiled -> queued -> scheduled -> starting ->
  running), but observers poll, so skipping ahead is allowed;
- `retrying` is the one way back: an attempt failed and the run is queued again;
- warning-like statuses (warning, unschedulable, unknown) can be entered from and left to any
  live status, since they say "we cannot tell how it is going" rather than where it is;
- `stopping` can only end in stopped, failed or succeeded;
- skipped and upstream_failed mean the run never started, so they need a not-yet-started run.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """Polyaxon 2.18's run statuses (V1Statuses), by value."""

    CREATED = "created"
    RESUMING = "resuming"
    ON_SCHEDULE = "on_schedule"
    COMPILED = "compiled"
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    STARTING = "starting"
    RUNNING = "running"
    PROCESSING = "processing"
    STOPPING = "stopping"
    FAILED = "failed"
    STOPPED = "stopped"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    WARNING = "warning"
    UNSCHEDULABLE = "unschedulable"
    UPSTREAM_FAILED = "upstream_failed"
    RETRYING = "retrying"
    UNKNOWN = "unknown"
    DONE = "done"


class CommitState(enum.StrEnum):
    """The four commit-status states every supported forge understands."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


# Groups as in Polyaxon's LifeCycle.
INITIAL: frozenset[Status] = frozenset({Status.CREATED, Status.RESUMING})
PENDING: frozenset[Status] = frozenset({Status.CREATED, Status.ON_SCHEDULE, Status.RESUMING})
# Not started yet: everything before the backend scheduled it.
NOT_STARTED: frozenset[Status] = PENDING | {Status.RETRYING, Status.COMPILED, Status.QUEUED}
RUNNING: frozenset[Status] = frozenset({Status.SCHEDULED, Status.STARTING, Status.RUNNING, Status.PROCESSING})
WARNING: frozenset[Status] = frozenset({Status.WARNING, Status.UNSCHEDULABLE, Status.UNKNOWN})
DONE: frozenset[Status] = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.UPSTREAM_FAILED, Status.STOPPED, Status.SKIPPED}
)
# Every status a run can actually hold (`done` is a trigger, not a state).
RUN_STATUSES: frozenset[Status] = frozenset(Status) - {Status.DONE}
# Not done yet: a queued, retrying or warning run occupies its slot like a running one.
ACTIVE: frozenset[Status] = RUN_STATUSES - DONE
# What trigger policies and early stopping count as failures.
FAILURES: frozenset[Status] = frozenset({Status.FAILED, Status.UPSTREAM_FAILED})

# Event kinds an operation may subscribe to (`events: [{kinds: [...]}]`), Polyaxon 2.18's.
EVENT_KINDS: tuple[str, ...] = (
    *(f"run_status_{s.value}" for s in Status),
    "run_approved_actor",
    "run_invalidated_actor",
    "run_new_artifacts",
    "connection_git_commit",
    "connection_dataset_version",
    "connection_registry_image",
    "alert_info",
    "alert_warning",
    "alert_critical",
    "model_version_new_metric",
    "project_custom_event",
    "org_custom_event",
)

# Position on the normal forward path; statuses absent here are handled by explicit rules.
_PROGRESS: dict[Status, int] = {
    Status.CREATED: 0,
    Status.RESUMING: 0,
    Status.ON_SCHEDULE: 0,
    Status.COMPILED: 1,
    Status.QUEUED: 2,
    Status.SCHEDULED: 3,
    Status.STARTING: 4,
    Status.RUNNING: 5,
    Status.PROCESSING: 5,
}

_STOPPING_ENDS: frozenset[Status] = frozenset({Status.STOPPED, Status.FAILED, Status.SUCCEEDED})
_NEVER_STARTED_ENDS: frozenset[Status] = frozenset({Status.SKIPPED, Status.UPSTREAM_FAILED})
_ANY_TIME_ENDS: frozenset[Status] = frozenset({Status.STOPPED, Status.FAILED, Status.SUCCEEDED})


def is_done(status: str | None) -> bool:
    """A done run never changes again. Takes the plain strings rows and backends carry too."""
    return status in DONE


def is_active(status: str | None) -> bool:
    return status in ACTIVE


def is_running(status: Status) -> bool:
    return status in RUNNING


def is_pending(status: Status) -> bool:
    """Not started yet (Polyaxon's "all pending" group)."""
    return status in NOT_STARTED


def is_warning(status: Status) -> bool:
    return status in WARNING


def transition_error(current: Status, target: Status) -> str | None:
    """Why `current -> target` is not allowed, or None when it is.

    `current == target` is not a transition; callers treat a repeated status as a no-op.
    """
    if current == target:
        return None
    if target == Status.DONE or current == Status.DONE:
        return "'done' is an event trigger, never the status of a run"
    if current in DONE:
        return f"the run is done ({current}) and a done run never changes status"
    if target in INITIAL:
        return f"{target} can only be the first status of a run"
    if current == Status.STOPPING:
        if target in _STOPPING_ENDS:
            return None
        return "a stopping run can only become stopped, failed or succeeded"
    if target in _NEVER_STARTED_ENDS:
        if current in NOT_STARTED:
            return None
        return f"{target} is only for runs that never started, and this one is {current}"
    if target in _ANY_TIME_ENDS or target == Status.STOPPING:
        return None
    if target in WARNING or current in WARNING:
        return None
    if target == Status.RETRYING:
        if current in PENDING:
            return "a run that has not been attempted yet cannot be retrying"
        return None
    if current == Status.RETRYING:
        return None
    if target == Status.ON_SCHEDULE and current not in PENDING:
        return "on_schedule comes before compilation"
    if _PROGRESS[target] < _PROGRESS[current]:
        return f"{current} -> {target} moves backwards (only retrying may)"
    return None


def can_transition(current: Status, target: Status) -> bool:
    """True when `current -> target` is an allowed change (a repeat is not a change)."""
    return current != target and transition_error(current, target) is None


def commit_state(status: Status) -> CommitState:
    """The forge commit-status state that reports a run in `status`."""
    if status == Status.DONE:
        raise ValueError("'done' is an event trigger, not a run status")
    if status == Status.SUCCEEDED:
        return CommitState.SUCCESS
    if status in (Status.FAILED, Status.UPSTREAM_FAILED):
        return CommitState.FAILURE
    if status in (Status.STOPPED, Status.SKIPPED):
        return CommitState.ERROR
    return CommitState.PENDING


def matches_trigger(trigger: Status, status: Status) -> bool:
    """Whether a run entering `status` fires a subscription or hook on `trigger`.

    `done` fires on every done status, as Polyaxon's `run_status_done` event does.
    """
    if trigger == Status.DONE:
        return status in DONE
    return trigger == status


def event_matches(kind: str, status: str) -> bool:
    """Does a `run_status_<x>` event kind (or hook trigger) match a run entering `status`?"""
    if not kind.startswith("run_status_"):
        return False
    try:
        trigger = Status(kind.removeprefix("run_status_"))
    except ValueError:
        return False
    return matches_trigger(trigger, Status(status)) if status in Status.__members__.values() else False


def statuses_for_trigger(trigger: Status) -> frozenset[Status]:
    """All run statuses that fire `trigger` (for queries that filter by status)."""
    if trigger == Status.DONE:
        return DONE
    return frozenset({trigger})
