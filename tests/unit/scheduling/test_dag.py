"""DAG progress: trigger policies with failures and skips, conditions, params, concurrency,
early stopping, nesting, and a DAG driven to completion step by step."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from reconciler.scheduling.dag import (
    DagError,
    DagGraph,
    DagNode,
    NodeState,
    build_graph,
    graph_from_spec,
    next_step,
)
from reconciler.scheduling.matrix import Trial, matrix_status
from reconciler.spec.io import Param
from reconciler.spec.matrix import FailureEarlyStopping, MetricEarlyStopping
from reconciler.spec.polyaxonfile import Polyaxonfile

NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def node(name: str, *ups: str, **kw: object) -> DagNode:
    return DagNode(name, frozenset(ups), **kw)  # type: ignore[arg-type]


def states(**statuses: str) -> dict[str, NodeState]:
    return {name: NodeState(status) for name, status in statuses.items()}


def decide_d(trigger: str, skip_on_upstream_skip: bool = False, **up: str) -> str:
    """What happens to `d` (upstream: the given ops) under `trigger`: start, wait, or a mark."""
    graph = build_graph(
        [*(node(u) for u in up), node("d", *up, trigger=trigger, skip_on_upstream_skip=skip_on_upstream_skip)]
    )
    step = next_step(graph, states(**up), NOW)
    if any(s.name == "d" for s in step.start):
        return "start"
    marks = {m.name: m.status for m in step.mark}
    return marks.get("d", "wait")


@pytest.mark.parametrize(
    ("trigger", "ups", "expected"),
    [
        ("all_succeeded", {"a": "succeeded", "b": "succeeded"}, "start"),
        ("all_succeeded", {"a": "succeeded", "b": "running"}, "wait"),
        ("all_succeeded", {"a": "failed", "b": "running"}, "upstream_failed"),
        ("all_succeeded", {"a": "stopped", "b": "succeeded"}, "upstream_failed"),
        ("all_succeeded", {"a": "skipped", "b": "succeeded"}, "start"),
        ("all_failed", {"a": "failed", "b": "upstream_failed"}, "start"),
        ("all_failed", {"a": "failed", "b": "running"}, "wait"),
        ("all_failed", {"a": "failed", "b": "succeeded"}, "skipped"),
        ("all_done", {"a": "failed", "b": "succeeded"}, "start"),
        ("all_done", {"a": "failed", "b": "queued"}, "wait"),
        ("one_succeeded", {"a": "succeeded", "b": "running"}, "start"),
        ("one_succeeded", {"a": "failed", "b": "running"}, "wait"),
        ("one_succeeded", {"a": "failed", "b": "stopped"}, "upstream_failed"),
        ("one_failed", {"a": "failed", "b": "running"}, "start"),
        ("one_failed", {"a": "succeeded", "b": "running"}, "wait"),
        ("one_failed", {"a": "succeeded", "b": "succeeded"}, "skipped"),
        ("one_done", {"a": "stopped", "b": "running"}, "start"),
        ("one_done", {"a": "running", "b": "running"}, "wait"),
        ("one_done", {"a": "skipped", "b": "skipped"}, "skipped"),
    ],
)
def test_trigger_policies(trigger: str, ups: dict[str, str], expected: str) -> None:
    assert decide_d(trigger, **ups) == expected


def test_skip_on_upstream_skip_propagates_skips() -> None:
    assert decide_d("all_succeeded", skip_on_upstream_skip=True, a="skipped", b="running") == "skipped"
    assert decide_d("all_done", skip_on_upstream_skip=True, a="skipped", b="succeeded") == "skipped"
    assert decide_d("all_done", skip_on_upstream_skip=False, a="skipped", b="succeeded") == "start"


def test_failure_propagates_down_a_chain_in_one_step_and_the_dag_fails() -> None:
    graph = build_graph([node("a"), node("b", "a"), node("c", "b"), node("side")])
    step = next_step(graph, states(a="failed", side="succeeded"), NOW)
    assert [(m.name, m.status) for m in step.mark] == [("b", "upstream_failed"), ("c", "upstream_failed")]
    assert step.mark[0].message == "upstream a is failed (all_succeeded)"
    assert step.status == "failed"


def test_skips_propagate_with_the_flag_and_dag_of_only_skips_is_skipped() -> None:
    graph = build_graph([node("a", conditions="false"), node("b", "a", skip_on_upstream_skip=True)])
    step = next_step(graph, {}, NOW)
    assert [(m.name, m.status, m.reason) for m in step.mark] == [
        ("a", "skipped", "ConditionsNotMet"),
        ("b", "skipped", "UpstreamSkipped"),
    ]
    assert step.status == "skipped"


def test_conditions_over_upstream_outputs_and_params() -> None:
    graph = build_graph(
        [
            node("train"),
            node(
                "deploy",
                "train",
                conditions="{{ ops.train.outputs.loss < 0.1 and env == 'prod' }}",
                params={"env": Param(value="prod")},
            ),
        ]
    )
    good = next_step(graph, {"train": NodeState("succeeded", outputs={"loss": 0.05})}, NOW)
    assert [s.name for s in good.start] == ["deploy"]
    bad = next_step(graph, {"train": NodeState("succeeded", outputs={"loss": 0.5})}, NOW)
    assert [(m.name, m.status) for m in bad.mark] == [("deploy", "skipped")]
    broken = next_step(graph, {"train": NodeState("succeeded", outputs={})}, NOW)
    assert broken.mark[0].status == "failed" and broken.mark[0].reason == "InvalidConditions"


def test_params_from_upstream_outputs_and_dag_inputs() -> None:
    graph = build_graph(
        [
            node("build"),
            node(
                "train",
                "build",
                params={
                    "image": Param(ref="ops.build", value="outputs.image"),
                    "tag": Param(value="v-{{ ops.build.outputs.tag }}"),
                    "lr": Param(value="{{ dag.inputs.lr }}"),
                    "id": Param(value="{{ globals.uuid }}"),
                },
            ),
        ],
        inputs={"lr": 0.01},
    )
    step = next_step(graph, {"build": NodeState("succeeded", outputs={"image": "img:1", "tag": 7})}, NOW, "dag-1")
    (start,) = step.start
    assert start.params == {"image": "img:1", "tag": "v-7", "lr": 0.01, "id": "{{ globals.uuid }}"}
    assert start.cause_id == "dag:dag-1:train"
    missing = next_step(graph, {"build": NodeState("succeeded", outputs={"tag": 7})}, NOW)
    assert missing.mark[0].reason == "UnresolvedParam" and "outputs.image" in missing.mark[0].message


def test_concurrency_limit_and_topological_order() -> None:
    graph = build_graph([node("e", "a"), node("a"), node("c"), node("b"), node("d")], concurrency=2)
    assert graph.order == ("a", "b", "c", "d", "e")
    assert [s.name for s in next_step(graph, {}, NOW).start] == ["a", "b"]
    assert [s.name for s in next_step(graph, states(a="running"), NOW).start] == ["b"]
    assert next_step(graph, states(a="running", b="queued"), NOW).start == ()
    assert [s.name for s in next_step(graph, states(a="succeeded", b="running"), NOW).start] == ["c"]


def test_early_stopping_on_failures_stops_active_and_skips_pending() -> None:
    graph = build_graph([node("a"), node("b"), node("c"), node("d")], early_stopping=[FailureEarlyStopping(percent=50)])
    step = next_step(graph, states(a="failed", b="failed", c="running"), NOW)
    assert step.stop == ("c",)
    assert [(m.name, m.status) for m in step.mark] == [("d", "skipped")]
    assert step.status is None  # still stopping c
    done = next_step(graph, states(a="failed", b="failed", c="stopped", d="skipped"), NOW)
    assert (done.status, done.reason) == ("failed", "EarlyStoppingFailures")
    assert next_step(graph, states(a="failed", c="running"), NOW).stop == ()


def test_early_stopping_on_a_metric_succeeds() -> None:
    graph = build_graph(
        [node("a"), node("b")],
        early_stopping=[MetricEarlyStopping(metric="acc", value=0.9, optimization="maximize")],
    )
    step = next_step(graph, {"a": NodeState("succeeded", outputs={"acc": 0.95})}, NOW)
    assert step.start == () and [m.name for m in step.mark] == ["b"]
    assert (step.status, step.reason) == ("succeeded", "EarlyStoppingMetric")


def test_unknown_dependency_and_cycle_are_errors() -> None:
    with pytest.raises(DagError, match="unknown x"):
        build_graph([node("a", "x")])
    with pytest.raises(DagError, match="cycle"):
        build_graph([node("a", "b"), node("b", "a")])


def drive(graph: DagGraph, outcome: Callable[[str, dict[str, object]], NodeState]) -> tuple[str, list[str]]:
    """Run the DAG to the end: every started op finishes at once with `outcome`."""
    current: dict[str, NodeState] = {}
    started: list[str] = []
    for _ in range(100):
        step = next_step(graph, current, NOW)
        for m in step.mark:
            current[m.name] = NodeState(m.status)
        for s in step.start:
            started.append(s.name)
            current[s.name] = outcome(s.name, s.params)
        if step.status:
            return step.status, started
    raise AssertionError("the DAG did not settle")


def test_a_dag_from_the_spec_runs_to_completion() -> None:
    spec = Polyaxonfile.model_validate(
        {
            "kind": "operation",
            "run": {
                "kind": "dag",
                "concurrency": 1,
                "operations": [
                    {"name": "prep", "hubRef": "x"},
                    {"name": "train", "hubRef": "x", "params": {"data": {"ref": "ops.prep", "value": "outputs.path"}}},
                    {"name": "eval", "hubRef": "x", "dependencies": ["train"]},
                    {"name": "alert", "hubRef": "x", "dependencies": ["train", "eval"], "trigger": "one_failed"},
                ],
            },
        }
    )
    graph = graph_from_spec(spec.run)
    assert graph.order == ("prep", "train", "eval", "alert")
    assert graph.nodes["train"].upstream == frozenset({"prep"})

    def ok(name: str, params: dict[str, object]) -> NodeState:
        if name == "train":
            assert params == {"data": "/data"}
        return NodeState("succeeded", outputs={"path": "/data"})

    assert drive(graph, ok) == ("succeeded", ["prep", "train", "eval"])  # alert skipped: nothing failed

    def eval_fails(name: str, params: dict[str, object]) -> NodeState:
        return NodeState("failed" if name == "eval" else "succeeded", outputs={"path": "/data"})

    assert drive(graph, eval_fails) == ("failed", ["prep", "train", "eval", "alert"])


def test_nested_dag_and_matrix_are_single_operations() -> None:
    inner = build_graph([node("x"), node("y", "x")])
    inner_step = next_step(inner, states(x="succeeded", y="failed"), NOW)
    assert inner_step.status == "failed"
    # The outer DAG sees the inner DAG's derived status and a matrix's derived status.
    trials_status = matrix_status(_grid(), [Trial({"a": 1}, "succeeded"), Trial({"a": 2}, "failed")]).status
    assert trials_status == "succeeded"
    outer = build_graph([node("inner"), node("sweep"), node("report", "inner", "sweep", trigger="all_done")])
    step = next_step(outer, {"inner": NodeState(inner_step.status), "sweep": NodeState(str(trials_status))}, NOW)
    assert [s.name for s in step.start] == ["report"]


def _grid() -> object:
    from reconciler.spec.matrix import GridSearch

    return GridSearch.model_validate({"kind": "grid", "params": {"a": {"kind": "choice", "value": [1, 2]}}})
