"""The run-status vocabulary and its rules (pure, no I/O)."""

from __future__ import annotations

import itertools

import pytest

from reconciler.statuses import (
    DONE,
    RUN_STATUSES,
    CommitState,
    Status,
    can_transition,
    commit_state,
    is_done,
    is_pending,
    is_running,
    matches_trigger,
    statuses_for_trigger,
    transition_error,
)

POLYAXON_2_18 = {
    "created", "resuming", "on_schedule", "compiled", "queued", "scheduled", "starting", "running",
    "processing", "stopping", "failed", "stopped", "succeeded", "skipped", "warning",
    "unschedulable", "upstream_failed", "retrying", "unknown", "done",
}  # fmt: skip


def test_the_twenty_polyaxon_statuses() -> None:
    assert {s.value for s in Status} == POLYAXON_2_18
    assert len(Status) == 20


def test_done_group_is_polyaxons() -> None:
    assert {s.value for s in DONE} == {"succeeded", "failed", "upstream_failed", "stopped", "skipped"}
    assert not is_done(Status.STOPPING)
    assert is_running(Status.PROCESSING)
    assert is_pending(Status.QUEUED) and not is_pending(Status.RUNNING)


@pytest.mark.parametrize(("done", "target"), [(d, t) for d in sorted(DONE) for t in Status if t != d])
def test_a_done_run_never_goes_back(done: Status, target: Status) -> None:
    assert not can_transition(done, target)
    assert transition_error(done, target) is not None


@pytest.mark.parametrize(
    "path",
    [
        ["created", "compiled", "queued", "scheduled", "starting", "running", "succeeded"],
        ["created", "on_schedule", "compiled", "queued", "running", "processing", "running", "failed"],
        ["created", "running", "stopping", "stopped"],
        ["created", "succeeded"],  # a poller can miss every intermediate status
        ["created", "queued", "unschedulable", "scheduled", "running", "unknown", "succeeded"],
        ["created", "compiled", "running", "retrying", "queued", "running", "succeeded"],
        ["created", "upstream_failed"],
        ["resuming", "compiled", "skipped"],
        ["created", "warning", "stopping", "failed"],
    ],
)
def test_allowed_paths(path: list[str]) -> None:
    for current, target in itertools.pairwise(path):
        assert transition_error(Status(current), Status(target)) is None, (current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("running", "queued"),  # backwards without retrying
        ("starting", "compiled"),
        ("compiled", "on_schedule"),
        ("running", "created"),  # initial-only statuses
        ("queued", "resuming"),
        ("running", "skipped"),  # skipped/upstream_failed need a run that never started
        ("starting", "upstream_failed"),
        ("stopping", "running"),  # stopping only ends
        ("stopping", "skipped"),
        ("created", "retrying"),  # nothing to retry yet
        ("running", "done"),  # done is a trigger, never a status
    ],
)
def test_illegal_transitions(current: str, target: str) -> None:
    assert not can_transition(Status(current), Status(target))
    assert transition_error(Status(current), Status(target))


def test_repeating_a_status_is_not_a_transition() -> None:
    for status in Status:
        assert not can_transition(status, status)
        assert transition_error(status, status) is None


def test_every_live_status_can_be_stopped_or_fail() -> None:
    for status in RUN_STATUSES - DONE - {Status.STOPPING}:
        assert can_transition(status, Status.STOPPING)
        assert can_transition(status, Status.STOPPED)
        assert can_transition(status, Status.FAILED)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("succeeded", "success"),
        ("failed", "failure"),
        ("upstream_failed", "failure"),
        ("stopped", "error"),
        ("skipped", "error"),
        ("created", "pending"),
        ("running", "pending"),
        ("stopping", "pending"),
        ("retrying", "pending"),
        ("unknown", "pending"),
    ],
)
def test_commit_state_mapping(status: str, state: str) -> None:
    assert commit_state(Status(status)) == CommitState(state)


def test_every_not_done_status_is_pending_on_the_forge() -> None:
    for status in RUN_STATUSES - DONE:
        assert commit_state(status) == CommitState.PENDING
    with pytest.raises(ValueError):
        commit_state(Status.DONE)


def test_done_trigger_matches_every_done_status() -> None:
    for status in RUN_STATUSES:
        assert matches_trigger(Status.DONE, status) == (status in DONE)
        assert matches_trigger(Status.SUCCEEDED, status) == (status == Status.SUCCEEDED)
    assert statuses_for_trigger(Status.DONE) == DONE
    assert statuses_for_trigger(Status.FAILED) == {Status.FAILED}
