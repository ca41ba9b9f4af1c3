"""DAG runs over the tracking DB: preprocess -> train -> evaluate to success, a failure propagating
upstream_failed, the backend's retries not duplicating anything, concurrency, and resume."""

from __future__ import annotations

import datetime as dt

from reconciler.model import RunRequest
from reconciler.plan import ActionKind
from reconciler.tracking import Store
from tests.integration.orchestration.conftest import T0
from tests.integration.orchestration.helpers import Daemon

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


def start(daemon: Daemon, files: dict[str, str]) -> RunRequest:
    actions = daemon.apply_git(files, "c1", T0)
    [create] = [a for a in actions if a.action == ActionKind.CREATE]
    assert create.run is not None and daemon.orch.is_container(create.run)
    daemon.create(create.run, T0)
    return create.run


def child(daemon: Daemon, name: str) -> str:
    [run] = daemon.by_op(name)
    return run.request.name


def test_a_dag_runs_its_ops_in_order_and_succeeds(daemon: Daemon, store: Store) -> None:
    dag = start(daemon, {"pipelines/p.yaml": PIPELINE})
    assert daemon.status(dag.name) == "running"
    assert [n.request.op.name for n in daemon.submitted] == ["pipeline.preprocess"]
    assert daemon.submitted[0].parent == dag.name
    assert daemon.submitted[0].request.cause_id == f"dag:{dag.name}:preprocess"

    daemon.finish(child(daemon, "pipeline.preprocess"), "succeeded", T0 + M)
    daemon.finish(child(daemon, "pipeline.train"), "succeeded", T0 + 2 * M, outputs={"loss": 0.125})
    [evaluate] = daemon.by_op("pipeline.evaluate")
    assert evaluate.request.params == {"loss": 0.125}
    assert evaluate.request.effective["params"]["loss"] == {"value": 0.125}
    assert daemon.status(dag.name) == "running"
    daemon.finish(evaluate.request.name, "succeeded", T0 + 3 * M)

    assert daemon.status(dag.name) == "succeeded"
    assert store.history(dag.name)[-1].message == "3 of 3 succeeded"
    assert len(daemon.submitted) == 3
    assert {r.parent for r in store.runs_by_op("r:pipelines/p.yaml#pipeline.train")} == {dag.name}
    assert store.run(dag.name).parent is None  # type: ignore[union-attr]


def test_a_failure_propagates_upstream_failed_and_fails_the_dag(daemon: Daemon, store: Store) -> None:
    dag = start(daemon, {"pipelines/p.yaml": PIPELINE})
    daemon.finish(child(daemon, "pipeline.preprocess"), "succeeded", T0 + M)
    daemon.finish(child(daemon, "pipeline.train"), "failed", T0 + 2 * M)

    assert daemon.by_op("pipeline.evaluate") == []  # never submitted
    [evaluate] = store.runs_by_op("r:pipelines/p.yaml#pipeline.evaluate")
    assert str(evaluate.status) == "upstream_failed" and evaluate.parent == dag.name
    assert store.history(evaluate)[-1].message == "upstream train is failed (all_succeeded)"
    assert daemon.status(dag.name) == "failed"
    assert store.history(dag.name)[-1].reason == "OperationsFailed"


def test_the_backends_retries_create_nothing_twice(daemon: Daemon, store: Store) -> None:
    dag = start(daemon, {"pipelines/p.yaml": PIPELINE})
    daemon.finish(child(daemon, "pipeline.preprocess"), "succeeded", T0 + M)
    train = child(daemon, "pipeline.train")
    daemon.record(train, "running", T0 + 2 * M)
    # The first attempt fails and the backend retries it (termination.maxRetries): the run goes
    # through `retrying`, never `failed`, so nothing downstream moves and no second run is made.
    daemon.record(train, "retrying", T0 + 2 * M)
    assert daemon.by_op("pipeline.evaluate") == [] and daemon.status(dag.name) == "running"
    daemon.outputs[train] = {"loss": 0.5}
    daemon.record(train, "running", T0 + 3 * M)
    daemon.record(train, "succeeded", T0 + 4 * M)
    assert len(daemon.by_op("pipeline.train")) == 1 and len(store.runs_by_op("r:pipelines/p.yaml#pipeline.train")) == 1
    assert len(daemon.by_op("pipeline.evaluate")) == 1


def test_concurrency_starts_one_op_at_a_time(daemon: Daemon) -> None:
    start(daemon, {"pipelines/par.yaml": PARALLEL})
    assert [n.request.op.name for n in daemon.submitted] == ["par.a"]
    daemon.finish(child(daemon, "par.a"), "succeeded", T0 + M)
    assert [n.request.op.name for n in daemon.submitted] == ["par.a", "par.b"]


def test_starting_twice_or_resuming_creates_nothing_new(daemon: Daemon, store: Store) -> None:
    dag = start(daemon, {"pipelines/p.yaml": PIPELINE})
    assert daemon.orch.start(dag, T0).new_runs == ()
    pre = child(daemon, "pipeline.preprocess")
    daemon.record(pre, "running", T0 + M)
    # The child's end is recorded, and the daemon dies before handing it to the orchestrator.
    daemon.outputs[pre] = {}
    store.transition(pre, "succeeded", at=T0 + 2 * M)  # type: ignore[arg-type]
    restarted = daemon.orchestrator()
    work = restarted.resume(T0 + 3 * M)
    assert [n.request.op.name for n in work.new_runs] == ["pipeline.train"]
    daemon.apply(work, T0 + 3 * M)
    daemon.record(child(daemon, "pipeline.train"), "queued", T0 + 3 * M)
    assert restarted.resume(T0 + 4 * M).new_runs == ()


def test_stopping_a_dag_stops_its_active_ops(daemon: Daemon) -> None:
    dag = start(daemon, {"pipelines/p.yaml": PIPELINE})
    pre = child(daemon, "pipeline.preprocess")
    daemon.record(pre, "running", T0 + M)
    daemon.record(dag.name, "stopped", T0 + 2 * M)
    assert daemon.stopped == [pre]
    daemon.record(pre, "stopped", T0 + 3 * M)
    assert daemon.by_op("pipeline.train") == []  # a stopped DAG starts nothing more


def test_the_daemons_create_of_a_returned_run_is_a_no_op(daemon: Daemon, store: Store) -> None:
    dag = start(daemon, {"pipelines/p.yaml": PIPELINE})
    [pre] = daemon.submitted
    again = store.create_run(
        op_key=str(pre.request.op),
        cause=pre.request.cause,
        cause_id=pre.request.cause_id,
        name=pre.request.name,
        spec_hash=pre.request.spec_hash,
        backend="local",
        now=T0,
        kind=pre.request.kind,
        spec=pre.request.effective,
        parent=pre.parent,
    )
    assert not again.created and again.run.parent == dag.name
    assert store.run(dag.name).backend_ref == "orchestrated"  # type: ignore[union-attr]
