"""Hooks on final statuses; retries with capped backoff; timeouts."""

from __future__ import annotations

import datetime as dt

from reconciler.scheduling.hooks import hooks_to_fire
from reconciler.scheduling.retries import TIMEOUT_REASON, backoff, retry_decision, timeout_decision
from reconciler.spec.sections import Hook

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def hook(**kw: object) -> Hook:
    return Hook.model_validate({"hubRef": "notify", **kw})


def test_hooks_fire_on_their_trigger_and_done_means_any_final() -> None:
    hooks = [hook(trigger="succeeded"), hook(trigger="failed"), hook(), hook(trigger="done")]
    fired, problems = hooks_to_fire(hooks, run="r1", status="failed")
    assert [h.index for h in fired] == [1, 2, 3] and problems == []
    assert fired[0].cause_id == "hook:r1:1:failed"
    assert hooks_to_fire(hooks, run="r1", status="running") == ([], [])


def test_hook_conditions_and_params_from_the_run() -> None:
    hooks = [
        hook(
            trigger="succeeded",
            conditions="{{ outputs.acc > 0.9 }}",
            params={"acc": {"value": "{{ run.outputs.acc }}"}},
        ),
        hook(trigger="succeeded", conditions="outputs.missing > 1"),
    ]
    fired, problems = hooks_to_fire(hooks, run="r", status="succeeded", outputs={"acc": 0.95})
    assert [(h.index, h.params) for h in fired] == [(0, {"acc": 0.95})]
    assert [p.index for p in problems] == [1]
    fired, _ = hooks_to_fire(hooks[:1], run="r", status="succeeded", outputs={"acc": 0.5})
    assert fired == []


def test_backoff_is_exponential_and_capped() -> None:
    assert [backoff(i).total_seconds() for i in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert backoff(50) == dt.timedelta(minutes=10)
    assert backoff(10**9) == dt.timedelta(minutes=10)


def test_failed_runs_retry_until_max_retries() -> None:
    d = retry_decision(status="failed", reason="Error", retries_done=0, max_retries=2, finished_at=T0)
    assert (d.retry, d.attempt, d.status, d.at) == (True, 1, "retrying", T0 + dt.timedelta(seconds=10))
    d = retry_decision(status="failed", reason="Error", retries_done=1, max_retries=2, finished_at=T0)
    assert d.retry and d.at == T0 + dt.timedelta(seconds=20)
    d = retry_decision(status="failed", reason="Error", retries_done=2, max_retries=2, finished_at=T0)
    assert not d.retry and "no retries left" in d.message


def test_no_retry_for_stops_skips_successes_timeouts_or_without_max_retries() -> None:
    for status in ("stopped", "skipped", "upstream_failed", "succeeded"):
        assert not retry_decision(status=status, reason="", retries_done=0, max_retries=3, finished_at=T0).retry
    assert not retry_decision(
        status="failed", reason=TIMEOUT_REASON, retries_done=0, max_retries=3, finished_at=T0
    ).retry
    assert not retry_decision(status="failed", reason="x", retries_done=0, max_retries=None, finished_at=T0).retry


def test_timeout_stops_with_a_clear_reason() -> None:
    early = timeout_decision(status="running", started_at=T0, timeout_seconds=60, now=T0 + dt.timedelta(seconds=59))
    assert not early.stop and early.deadline == T0 + dt.timedelta(seconds=60)
    late = timeout_decision(status="running", started_at=T0, timeout_seconds=60, now=T0 + dt.timedelta(seconds=61))
    assert late.stop and late.reason == "TimeoutExceeded"
    assert "longer than termination.timeout of 60s" in late.message
    assert not timeout_decision(
        status="succeeded", started_at=T0, timeout_seconds=1, now=T0 + dt.timedelta(hours=1)
    ).stop
    assert not timeout_decision(
        status="running", started_at=T0, timeout_seconds=None, now=T0 + dt.timedelta(days=9)
    ).stop
