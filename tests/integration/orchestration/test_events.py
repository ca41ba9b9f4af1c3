"""Event subscriptions on the production daemon: a chain A -> B -> C creates each run exactly once
(whoever sees the transitions again), params come from upstream outputs, other statuses and removed
subscriptions fire nothing, and a transition recorded just before a crash fires on resume."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from reconciler.model import Cause, StatusTransition
from reconciler.plan import ActionKind
from tests.infra.daemon import Clock, DaemonHarness
from tests.infra.scripted_backend import ScriptedBackend
from tests.integration.orchestration.conftest import T0

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


def start_a(h: DaemonHarness) -> str:
    """Git gets the three files: b and c subscribe, a runs."""
    result = h.apply_git(FILES, T0)
    assert {(a.action, a.op.name) for a in result.plan if a.action != ActionKind.NOOP} == {
        (ActionKind.SUBSCRIBE, "b"),
        (ActionKind.SUBSCRIBE, "c"),
        (ActionKind.CREATE, "a"),
    }
    [a] = h.submitted
    assert a.op.name == "a"
    return a.name


def test_a_chain_runs_each_link_exactly_once(h: DaemonHarness) -> None:
    a = start_a(h)
    h.finish(a, "succeeded", T0 + M, outputs={"loss": 0.25})
    [b] = h.by_op("b")
    assert b.params == {"loss": 0.25} and b.cause_id.startswith(f"event:{a}:succeeded@")
    assert h.run(b.name).cause == Cause.EVENT
    h.finish(b.name, "failed", T0 + 2 * M)  # run_status_done: any final status
    [c] = h.by_op("c")
    h.finish(c.name, "succeeded", T0 + 3 * M)

    # The same transition handed to the orchestration again, by this daemon and by a second one
    # over its own connections, and a second daemon's resume pass: nothing new.
    again = StatusTransition(a, "succeeded", T0 + M)
    h.daemon.applier.apply_work(h.daemon.orchestration.on_transition(again, T0 + 4 * M), T0 + 4 * M)
    elsewhere = ScriptedBackend()
    second = h.build(store=h.open_store(), backend=elsewhere, clock=Clock(T0 + 5 * M))
    second.applier.apply_work(second.orchestration.on_transition(again, T0 + 4 * M), T0 + 4 * M)
    second.resume()
    assert elsewhere.submits == []
    for name in ("b", "c"):
        assert len(h.store.runs_by_op(f"r:ops/{name}.yaml#{name}")) == 1
    assert len(h.submitted) == 3


def test_other_statuses_do_not_fire_and_removed_subscriptions_stop_firing(h: DaemonHarness) -> None:
    a = start_a(h)
    h.finish(a, "failed", T0 + M)
    assert h.by_op("b") == []
    result = h.apply_git({"ops/a.yaml": FILES["ops/a.yaml"]}, T0 + 2 * M)
    assert sorted(a.op.name for a in result.plan if a.action == ActionKind.UNSUBSCRIBE) == ["b", "c"]
    assert h.daemon.orchestration.tracked("r") == ({}, {})
    # a changes and succeeds: nobody follows it any more.
    h.apply_git({"ops/a.yaml": FILES["ops/a.yaml"].replace("value: 1.0", "value: 2.0")}, T0 + 3 * M)
    [_, a2] = h.by_op("a")
    h.finish(a2.name, "succeeded", T0 + 4 * M)
    assert h.by_op("b") == []


def test_a_transition_recorded_before_a_crash_fires_on_resume(
    h: DaemonHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = start_a(h)
    h.set_outputs(a, {"loss": 0.5})

    # a's success is recorded, and the daemon dies before acting on it.
    def crash(transitions: Sequence[StatusTransition], now: dt.datetime) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as m:
        m.setattr(h.daemon.orchestration, "on_transitions", crash)
        with pytest.raises(RuntimeError, match="power cut"):
            h.record(a, "succeeded", T0 + M)
    assert h.status(a) == "succeeded" and h.by_op("b") == []

    h.restart()
    h.resume(T0 + 2 * M)
    [b] = h.by_op("b")
    assert b.params == {"loss": 0.5}
    h.record(b.name, "queued", T0 + 2 * M)
    h.resume(T0 + 3 * M)
    assert len(h.submitted) == 2


def test_a_repo_config_change_alone_moves_the_next_event_runs_namespace(h: DaemonHarness) -> None:
    """b is unchanged (nothing for the planner to do), its repo's namespace is not: the next run
    its subscription starts goes to the new namespace."""
    a = start_a(h)
    h.config["r"] = {"namespace": "ml"}
    h.apply_git(FILES, T0 + M)
    h.finish(a, "succeeded", T0 + 2 * M, outputs={"loss": 0.5})
    [b] = h.by_op("b")
    assert b.namespace == "ml"
