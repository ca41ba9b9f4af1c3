"""Hooks on final statuses."""

from __future__ import annotations

import datetime as dt

from reconciler.scheduling.hooks import hooks_to_fire
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
