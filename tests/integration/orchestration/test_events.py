"""Event subscriptions over the tracking DB: a chain A -> B -> C creates each run exactly once,
params come from upstream outputs, and a transition recorded before a crash is handled on resume."""

from __future__ import annotations

import datetime as dt

from reconciler.model import StatusTransition
from reconciler.plan import ActionKind
from reconciler.tracking import Store
from tests.integration.orchestration.conftest import T0
from tests.integration.orchestration.helpers import Daemon

M = dt.timedelta(minutes=1)

JOB = """\
component:
  inputs: [{name: loss, type: float, isOptional: true, value: 1.0}]
  outputs: [{name: loss, type: float, isOptional: true}]
  run:
    kind: job
    container: {image: busybox, command: [echo, "{{ loss }}"]}
"""

FILES = {
    "ops/a.yaml": "version: 1.1\nkind: operation\nname: a\n" + JOB,
    "ops/b.yaml": "version: 1.1\nkind: operation\nname: b\n"
    "events: [{kinds: [run_status_succeeded], ref: ops.a}]\n"
    'params: {loss: "{{ ops.a.outputs.loss }}"}\n' + JOB,
    "ops/c.yaml": "version: 1.1\nkind: operation\nname: c\nevents: [{kinds: [run_status_done], ref: ops.b}]\n" + JOB,
}


def start_a(daemon: Daemon) -> str:
    actions = daemon.apply_git(FILES, "c1", T0)
    assert {(a.action, a.op.name) for a in actions if a.action != ActionKind.NOOP} == {
        (ActionKind.SUBSCRIBE, "b"),
        (ActionKind.SUBSCRIBE, "c"),
        (ActionKind.CREATE, "a"),
    }
    [create] = [a for a in actions if a.action == ActionKind.CREATE]
    assert create.run is not None
    daemon.create(create.run, T0)
    return create.run.name


def test_a_chain_runs_each_link_exactly_once(daemon: Daemon, db_url: str) -> None:
    a = start_a(daemon)
    daemon.finish(a, "succeeded", T0 + M, outputs={"loss": 0.25})
    [b] = daemon.by_op("b")
    assert b.request.params == {"loss": 0.25} and b.request.cause_id.startswith(f"event:{a}:succeeded@")
    daemon.finish(b.request.name, "failed", T0 + 2 * M)  # run_status_done: any final status
    [c] = daemon.by_op("c")
    daemon.finish(c.request.name, "succeeded", T0 + 3 * M)

    # The same transitions again, from this daemon and from a second one: nothing new.
    again = daemon.orch.on_transition(StatusTransition(a, "succeeded", T0 + M), T0 + 4 * M)
    other = Store.open(db_url)
    try:
        second = Daemon(other)
        assert second.orch.on_transition(StatusTransition(a, "succeeded", T0 + M), T0 + 4 * M).empty
        assert second.orch.resume(T0 + 5 * M).empty
    finally:
        other.close()
    assert again.empty
    for name in ("b", "c"):
        assert len(daemon.store.runs_by_op(f"r:ops/{name}.yaml#{name}")) == 1
    assert len(daemon.submitted) == 3


def test_other_statuses_do_not_fire_and_removed_subscriptions_stop_firing(daemon: Daemon) -> None:
    a = start_a(daemon)
    daemon.finish(a, "failed", T0 + M)
    assert daemon.by_op("b") == []
    actions = daemon.apply_git({"ops/a.yaml": FILES["ops/a.yaml"]}, "c2", T0 + 2 * M)
    assert sorted(a.op.name for a in actions if a.action == ActionKind.UNSUBSCRIBE) == ["b", "c"]
    assert daemon.orch.tracked("r") == ({}, {})


def test_a_transition_recorded_before_a_crash_fires_on_resume(daemon: Daemon, store: Store) -> None:
    a = start_a(daemon)
    daemon.outputs[a] = {"loss": 0.5}
    store.transition(a, "succeeded", at=T0 + M)  # type: ignore[arg-type]  # then the daemon dies
    restarted = daemon.orchestrator()
    [b] = restarted.resume(T0 + 2 * M).new_runs
    assert b.request.op.name == "b" and b.request.params == {"loss": 0.5}
    daemon.record(b.request.name, "queued", T0 + 2 * M)
    assert restarted.resume(T0 + 3 * M).empty
