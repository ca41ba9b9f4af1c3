"""Hooks on the production daemon: a run reaching a final status starts each matching hook once,
its component resolved by the daemon from the repo's `hub_dir` at the applied commit; without a
hub directory the hook does not run and a notice says so."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from reconciler.model import Cause, StatusTransition
from tests.infra.daemon import DaemonHarness
from tests.integration.orchestration.conftest import T0

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
# The hub component the first hook names (`hub/<name>/<tag or latest>.yaml`); `paging` has none.
NOTIFIER = """
    version: 1.1
    kind: component
    name: notifier
    inputs: [{name: text, type: str}]
    run: {kind: job, container: {image: busybox, command: [echo, "{{ text }}"]}}
    """


def start(h: DaemonHarness, files: dict[str, str]) -> str:
    h.apply_git(files, T0)
    [run] = h.submitted
    assert run.op.name == "h"
    return run.name


def test_a_hook_runs_once_with_its_component_from_the_hub_dir(h: DaemonHarness) -> None:
    h.config["r"] = {"hub_dir": "hub"}
    run = start(h, {**FILES, "hub/notifier/latest.yaml": NOTIFIER})
    h.finish(run, "succeeded", T0 + M)
    [hook] = h.by_op("h.hook0")
    assert h.parent(hook.name) == run and hook.params == {"text": "trained"}
    assert hook.cause_id == f"hook:{run}:0:succeeded" and h.run(hook.name).cause == Cause.HOOK
    assert hook.effective["run"]["container"]["command"] == ["echo", "{{ text }}"]
    assert h.notices == []  # the failed-only hook (whose component is missing) was not looked up
    # The same transition handled again: no second hook run.
    again = StatusTransition(run, "succeeded", T0 + M)
    h.daemon.applier.apply_work(h.daemon.orchestration.on_transition(again, T0 + 2 * M), T0 + 2 * M)
    assert len(h.by_op("h.hook0")) == 1 and len(h.store.runs_by_op("r:ops/h.yaml#h.hook0")) == 1
    assert h.store.runs_by_op("r:ops/h.yaml#h.hook1") == []


def test_a_restarted_daemon_resolves_hooks_from_git(h: DaemonHarness) -> None:
    """The hub is read at the applied commit: a daemon that restarted has to read Git first."""
    h.config["r"] = {"hub_dir": "hub"}
    run = start(h, {**FILES, "hub/notifier/latest.yaml": NOTIFIER})
    h.record(run, "running", T0 + M)
    h.restart()
    h.reconcile(at=T0 + 2 * M)
    h.record(run, "succeeded", T0 + 3 * M)
    [hook] = h.by_op("h.hook0")
    assert hook.params == {"text": "trained"}


def test_without_a_hub_dir_the_hook_is_reported_not_run(h: DaemonHarness) -> None:
    run = start(h, FILES)
    h.finish(run, "succeeded", T0 + M)
    assert h.by_op("h.hook0") == []
    assert h.notices == [f"{run}: HookNotRun: hook 0 (notifier) did not run: its hubRef cannot be resolved here"]


def test_a_hook_whose_params_do_not_fit_its_component_does_not_run(
    h: DaemonHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """The `paging` hook (on failure) gives no `text`, which its component requires: checked as an
    operation, like any other, it does not compile, so it does not run, and the log says why."""
    h.config["r"] = {"hub_dir": "hub"}
    run = start(h, {**FILES, "hub/paging/latest.yaml": NOTIFIER.replace("name: notifier", "name: paging")})
    with caplog.at_level(logging.WARNING, logger="reconciler"):
        h.finish(run, "failed", T0 + M)
    assert h.by_op("h.hook1") == []
    assert h.notices == [f"{run}: HookNotRun: hook 1 (paging) did not run: its hubRef cannot be resolved here"]
    assert "hook paging of r:ops/h.yaml#h does not compile" in caplog.text
    assert "required inputs have no value: text" in caplog.text
