"""Hooks: a run reaching a final status starts each matching hook once, through the daemon's hub
resolver; without a resolver the hook does not run and a notice says so."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reconciler.model import OpKey, StatusTransition
from reconciler.plan import ActionKind
from reconciler.tracking import Store
from tests.integration.orchestration.conftest import T0
from tests.integration.orchestration.helpers import Daemon

M = dt.timedelta(minutes=1)
FILES = {
    "ops/h.yaml": """
        version: 1.1
        kind: operation
        name: h
        hooks:
          - {hubRef: notifier, trigger: succeeded, params: {text: {value: trained}}}
          - {hubRef: paging, trigger: failed}
        component:
          run: {kind: job, container: {image: busybox, command: [echo, hi]}}
        """
}
NOTIFIER: dict[str, Any] = {
    "run": {"kind": "job", "container": {"image": "busybox", "command": ["echo", "{{ text }}"]}}
}


def start(daemon: Daemon) -> str:
    [create] = [a for a in daemon.apply_git(FILES, "c1", T0) if a.action == ActionKind.CREATE]
    assert create.run is not None
    daemon.create(create.run, T0)
    return create.run.name


def test_a_hook_runs_once_with_its_component_from_the_resolver(daemon: Daemon, store: Store) -> None:
    asked: list[tuple[OpKey, str]] = []

    def resolve(op: OpKey, hub_ref: str) -> dict[str, Any] | None:
        asked.append((op, hub_ref))
        return dict(NOTIFIER) if hub_ref == "notifier" else None

    daemon.orch = daemon.orchestrator(resolve_hub=resolve)
    run = start(daemon)
    daemon.finish(run, "succeeded", T0 + M)
    [hook] = daemon.by_op("h.hook0")
    assert hook.parent == run and hook.request.params == {"text": "trained"}
    assert hook.request.cause_id == f"hook:{run}:0:succeeded"
    assert asked == [(OpKey("r", "ops/h.yaml", "h"), "notifier")]  # the failed-only hook did not fire
    assert daemon.orch.on_transition(StatusTransition(run, "succeeded", T0 + M), T0 + 2 * M).new_runs == ()
    assert len(store.runs_by_op("r:ops/h.yaml#h.hook0")) == 1


def test_without_a_resolver_the_hook_is_reported_not_run(daemon: Daemon) -> None:
    run = start(daemon)
    daemon.finish(run, "succeeded", T0 + M)
    assert daemon.by_op("h.hook0") == []
    assert daemon.notices == [f"{run}: HookNotRun: hook 0 (notifier) did not run: its hubRef cannot be resolved here"]
