"""DAG runs on the production daemon: preprocess -> train -> evaluate to success, a failure
propagating upstream_failed, the backend's retries not duplicating anything, concurrency, stop,
and resume after a crash between a child's status and the DAG's next step."""

from __future__ import annotations

import datetime as dt
import urllib.request
from collections.abc import Sequence

import pytest

from reconciler.model import RunRequest, StatusTransition
from reconciler.orchestration import Orchestrator
from reconciler.plan import ActionKind
from tests.infra.daemon import DaemonHarness
from tests.integration.orchestration.conftest import T0

M = dt.timedelta(minutes=1)


def component(inputs: str = "[]", outputs: str = "[{name: loss, type: float, isOptional: true}]") -> str:
    return (
        "{inputs: " + inputs + ", outputs: " + outputs + ","
        " run: {kind: job, container: {image: busybox, command: [echo, hi]}}}"
    )


PIPELINE = f"""
version: 1.1
kind: operation
name: pipeline
component:
  run:
    kind: dag
    operations:
      - name: preprocess
        component: {component()}
      - name: train
        dependencies: [preprocess]
        component: {component()}
      - name: evaluate
        params: {{loss: {{ref: ops.train, value: outputs.loss}}}}
        component: {component("[{name: loss, type: float}]", outputs="[]")}
"""

PARALLEL = f"""
version: 1.1
kind: operation
name: par
component:
  run:
    kind: dag
    concurrency: 1
    operations:
      - {{name: a, component: {component()}}}
      - {{name: b, component: {component()}}}
"""


def start(h: DaemonHarness, files: dict[str, str]) -> RunRequest:
    """Git gets the DAG; the daemon's reconcile creates its run and expands it."""
    result = h.apply_git(files, T0)
    [create] = [a for a in result.plan if a.action == ActionKind.CREATE]
    assert create.run is not None and Orchestrator.is_container(create.run)
    return create.run


def child(h: DaemonHarness, name: str) -> str:
    [run] = h.by_op(name)
    return run.name


def test_a_dag_runs_its_ops_in_order_and_succeeds(h: DaemonHarness) -> None:
    dag = start(h, {"pipelines/p.yaml": PIPELINE})
    assert h.status(dag.name) == "running"
    assert [r.op.name for r in h.submitted] == ["pipeline.preprocess"]
    assert h.parent(h.submitted[0].name) == dag.name
    assert h.submitted[0].cause_id == f"dag:{dag.name}:preprocess"

    h.finish(child(h, "pipeline.preprocess"), "succeeded", T0 + M)
    h.finish(child(h, "pipeline.train"), "succeeded", T0 + 2 * M, outputs={"loss": 0.125})
    [evaluate] = h.by_op("pipeline.evaluate")
    assert evaluate.params == {"loss": 0.125}
    assert evaluate.effective["params"]["loss"] == {"value": 0.125}
    assert h.status(dag.name) == "running"
    h.finish(evaluate.name, "succeeded", T0 + 3 * M)

    assert h.status(dag.name) == "succeeded"
    assert h.store.history(dag.name)[-1].message == "3 of 3 succeeded"
    assert len(h.submitted) == 3
    assert {r.parent for r in h.store.runs_by_op("r:pipelines/p.yaml#pipeline.train")} == {dag.name}
    assert h.parent(dag.name) is None
    # The next poll of an unchanged repo starts nothing again.
    h.reconcile(at=T0 + 4 * M)
    assert len(h.submitted) == 3


def test_a_failure_propagates_upstream_failed_and_fails_the_dag(h: DaemonHarness) -> None:
    dag = start(h, {"pipelines/p.yaml": PIPELINE})
    h.finish(child(h, "pipeline.preprocess"), "succeeded", T0 + M)
    h.finish(child(h, "pipeline.train"), "failed", T0 + 2 * M)

    assert h.by_op("pipeline.evaluate") == []  # never submitted
    [evaluate] = h.store.runs_by_op("r:pipelines/p.yaml#pipeline.evaluate")
    assert str(evaluate.status) == "upstream_failed" and evaluate.parent == dag.name
    assert h.store.history(evaluate)[-1].message == "upstream train is failed (all_succeeded)"
    assert h.status(dag.name) == "failed"
    assert h.store.history(dag.name)[-1].reason == "OperationsFailed"


def test_the_backends_retries_create_nothing_twice(h: DaemonHarness) -> None:
    dag = start(h, {"pipelines/p.yaml": PIPELINE})
    h.finish(child(h, "pipeline.preprocess"), "succeeded", T0 + M)
    train = child(h, "pipeline.train")
    h.record(train, "running", T0 + 2 * M)
    # The first attempt fails and the backend retries it (termination.maxRetries): the run goes
    # through `retrying`, never `failed`, so nothing downstream moves and no second run is made.
    h.record(train, "retrying", T0 + 2 * M)
    assert h.by_op("pipeline.evaluate") == [] and h.status(dag.name) == "running"
    h.set_outputs(train, {"loss": 0.5})
    h.record(train, "running", T0 + 3 * M)
    h.record(train, "succeeded", T0 + 4 * M)
    assert len(h.by_op("pipeline.train")) == 1 and len(h.store.runs_by_op("r:pipelines/p.yaml#pipeline.train")) == 1
    assert len(h.by_op("pipeline.evaluate")) == 1


def test_concurrency_starts_one_op_at_a_time(h: DaemonHarness) -> None:
    start(h, {"pipelines/par.yaml": PARALLEL})
    assert [r.op.name for r in h.submitted] == ["par.a"]
    h.finish(child(h, "par.a"), "succeeded", T0 + M)
    assert [r.op.name for r in h.submitted] == ["par.a", "par.b"]


def test_starting_twice_or_resuming_creates_nothing_new(h: DaemonHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    dag = start(h, {"pipelines/p.yaml": PIPELINE})
    h.daemon.applier.create(dag, T0)
    h.resume(T0)
    assert [r.op.name for r in h.submitted] == ["pipeline.preprocess"]
    pre = child(h, "pipeline.preprocess")
    h.record(pre, "running", T0 + M)

    # The child's end is recorded, and the daemon dies before handing it to the orchestrator.
    def crash(transitions: Sequence[StatusTransition], now: dt.datetime) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as m:
        m.setattr(h.daemon.orchestration, "on_transitions", crash)
        with pytest.raises(RuntimeError, match="power cut"):
            h.record(pre, "succeeded", T0 + 2 * M)
    assert h.status(pre) == "succeeded" and h.by_op("pipeline.train") == []

    h.restart()
    h.resume(T0 + 3 * M)
    assert [r.op.name for r in h.submitted] == ["pipeline.preprocess", "pipeline.train"]
    h.record(child(h, "pipeline.train"), "queued", T0 + 3 * M)
    h.resume(T0 + 4 * M)
    assert len(h.submitted) == 2


def test_stopping_a_dag_stops_its_active_ops(h: DaemonHarness) -> None:
    dag = start(h, {"pipelines/p.yaml": PIPELINE})
    pre = child(h, "pipeline.preprocess")
    h.record(pre, "running", T0 + M)
    h.record(dag.name, "stopped", T0 + 2 * M)
    assert h.stopped == [pre]
    h.record(pre, "stopped", T0 + 3 * M)
    assert h.by_op("pipeline.train") == []  # a stopped DAG starts nothing more


def test_stopping_a_dag_through_the_api_stops_its_active_ops(h: DaemonHarness) -> None:
    """`reconciler runs stop <dag>` asks the daemon's API, which used to hand the name to the
    backend: a DAG has no backend object, so nothing stopped and the DAG stayed running."""
    dag = start(h, {"pipelines/p.yaml": PIPELINE})
    pre = child(h, "pipeline.preprocess")
    h.record(pre, "running", T0 + M)
    url = h.start(workers=1) + f"/api/runs/{dag.name}/stop"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as answer:
        assert answer.status == 202
    assert h.status(dag.name) == "stopped"
    assert h.stopped == [pre]


def test_creating_a_child_again_is_a_no_op(h: DaemonHarness) -> None:
    dag = start(h, {"pipelines/p.yaml": PIPELINE})
    [pre] = h.submitted
    h.daemon.applier.create(pre, T0, parent=dag.name)
    assert h.submitted == [pre] and h.parent(pre.name) == dag.name
    assert h.run(dag.name).backend_ref == "orchestrated"
