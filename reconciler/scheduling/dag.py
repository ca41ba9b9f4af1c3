"""DAG progress: given the state of each operation, what happens next.

Like gitops-engine's `SyncContext.Sync()`, a DAG advances in small resumable steps: each call
looks at the current states (from the tracking DB) and returns which operations to start, which
to mark skipped, upstream_failed or failed, which to stop, and the DAG's own status once it is
settled. Nothing is remembered between calls, so a restart resumes where the rows say.

Rules, in the order they apply to an operation that has not started:

1. `skipOnUpstreamSkip` set and an upstream op skipped -> skipped. Without it, a skipped
   upstream is left out of the trigger policy (a branch not taken does not block the join).
2. Trigger policy over the other upstream ops (failed and upstream_failed count as failures):
   all_succeeded / one_succeeded that can no longer hold -> upstream_failed; all_failed /
   one_failed / one_done that can no longer hold -> skipped; otherwise wait or go.
3. `conditions` false -> skipped; a condition that cannot be evaluated -> failed.
4. Params from upstream outputs (`{{ ops.a.outputs.x }}`) that cannot be resolved -> failed.
5. Start, in topological order, as far as `concurrency` allows.

Early stopping (metric or failures over the ops' outputs and statuses) stops the active ops and
skips the rest. The DAG's status, once every op is final: the early-stopping verdict if one
held; else failed if an op failed or is upstream_failed; else stopped if one stopped; else
skipped if all were skipped; else succeeded. A nested DAG or a matrix is one operation here:
its state comes from its own `next_step` or `matrix.progress`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.scheduling import early_stopping
from reconciler.scheduling.conditions import ConditionError, evaluate
from reconciler.scheduling.refs import RefError, resolve_params, run_context
from reconciler.spec.check import find_cycle, upstream_of_event, upstream_of_param
from reconciler.spec.io import Param
from reconciler.statuses import FAILURES, Status, is_active, is_done

TRIGGER_POLICIES = ("all_succeeded", "all_failed", "all_done", "one_succeeded", "one_failed", "one_done")


class DagError(ValueError):
    """The DAG cannot be progressed (a cycle, an unknown dependency, an unresolved field)."""


@dataclass(frozen=True)
class DagNode:
    name: str
    upstream: frozenset[str] = frozenset()
    trigger: str = "all_succeeded"
    conditions: str | None = None
    skip_on_upstream_skip: bool = False
    params: Mapping[str, Param] = field(default_factory=dict)


@dataclass(frozen=True)
class DagGraph:
    nodes: Mapping[str, DagNode]
    order: tuple[str, ...]  # topological, ties by name
    concurrency: int | None = None
    early_stopping: Sequence[Any] = ()
    inputs: Mapping[str, Any] = field(default_factory=dict)  # the DAG run's own params


def _topological(nodes: Mapping[str, DagNode]) -> tuple[str, ...]:
    cycle = find_cycle({n.name: set(n.upstream) for n in nodes.values()})
    if cycle:
        raise DagError(f"the DAG has a cycle: {' -> '.join(cycle)}")
    order: list[str] = []
    placed: set[str] = set()
    remaining = sorted(nodes)
    while remaining:
        ready = [n for n in remaining if nodes[n].upstream <= placed]
        order.extend(ready)
        placed.update(ready)
        remaining = [n for n in remaining if n not in placed]
    return tuple(order)


def build_graph(
    nodes: Sequence[DagNode],
    *,
    concurrency: int | None = None,
    early_stopping: Sequence[Any] = (),
    inputs: Mapping[str, Any] | None = None,
) -> DagGraph:
    by_name: dict[str, DagNode] = {}
    for node in nodes:
        if node.name in by_name:
            raise DagError(f"two operations named {node.name!r}")
        if node.trigger not in TRIGGER_POLICIES:
            raise DagError(f"operation {node.name!r}: unknown trigger policy {node.trigger!r}")
        by_name[node.name] = node
    for node in nodes:
        missing = sorted(node.upstream - set(by_name))
        if missing:
            raise DagError(f"operation {node.name!r} depends on unknown {', '.join(missing)}")
    return DagGraph(by_name, _topological(by_name), concurrency, tuple(early_stopping), dict(inputs or {}))


def graph_from_spec(dag: Any, inputs: Mapping[str, Any] | None = None) -> DagGraph:
    """From a resolved `reconciler.spec.runs.Dag`: dependencies, param refs and event refs are edges."""
    operations = dag.operations
    if not isinstance(operations, list):
        raise DagError("the DAG's operations are not resolved")
    nodes: list[DagNode] = []
    for op in operations:
        ups = set(op.dependencies) if isinstance(op.dependencies, list) else set()
        params: dict[str, Param] = dict(op.params or {})
        for param in params.values():
            ref = upstream_of_param(param)
            if ref:
                ups.add(ref)
        for event in op.events if isinstance(op.events, list) else []:
            target = upstream_of_event(event)
            if target:
                ups.add(target)
        trigger = op.trigger or "all_succeeded"
        if trigger not in TRIGGER_POLICIES:
            raise DagError(f"operation {op.name!r}: trigger {trigger!r} is not resolved to a policy")
        nodes.append(
            DagNode(
                name=op.name,
                upstream=frozenset(ups),
                trigger=trigger,
                conditions=op.conditions,
                skip_on_upstream_skip=bool(op.skip_on_upstream_skip),
                params=params,
            )
        )
    concurrency = dag.concurrency if isinstance(dag.concurrency, int) else None
    early = dag.early_stopping if isinstance(dag.early_stopping, list) else ()
    return build_graph(nodes, concurrency=concurrency, early_stopping=early, inputs=inputs)


@dataclass(frozen=True)
class NodeState:
    status: str
    run: str = ""
    outputs: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Start:
    name: str
    params: dict[str, Any]
    cause_id: str


@dataclass(frozen=True)
class Mark:
    name: str
    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class DagStep:
    at: dt.datetime
    start: tuple[Start, ...] = ()
    mark: tuple[Mark, ...] = ()
    stop: tuple[str, ...] = ()
    status: str | None = None  # the DAG's own status once every op is final, else None
    reason: str = ""
    message: str = ""

    @property
    def done(self) -> bool:
        return self.status is not None


_WAIT = "wait"
_GO = "go"


def _policy(node: DagNode, states: Mapping[str, str | None]) -> tuple[str, str, str]:
    """(wait | go | a status to mark, reason, message) from the trigger policy."""
    ups = sorted(node.upstream)
    if node.skip_on_upstream_skip:
        skipped = [u for u in ups if states.get(u) == Status.SKIPPED]
        if skipped:
            return Status.SKIPPED, "UpstreamSkipped", f"upstream {', '.join(skipped)} skipped (skipOnUpstreamSkip)"
    considered = [u for u in ups if states.get(u) != Status.SKIPPED]
    pending = [u for u in considered if not is_done(states.get(u))]
    succeeded = [u for u in considered if states.get(u) == Status.SUCCEEDED]
    failed = [u for u in considered if states.get(u) in FAILURES]
    finished = [u for u in considered if is_done(states.get(u))]
    not_succeeded = [u for u in finished if u not in succeeded]
    not_failed = [u for u in finished if u not in failed]
    policy = node.trigger
    if policy == "all_succeeded":
        if not_succeeded:
            first = not_succeeded[0]
            return Status.UPSTREAM_FAILED, "UpstreamFailed", f"upstream {first} is {states.get(first)} (all_succeeded)"
        return (_WAIT, "", "") if pending else (_GO, "", "")
    if policy == "all_failed":
        if not_failed:
            first = not_failed[0]
            return Status.SKIPPED, "TriggerNotMet", f"upstream {first} is {states.get(first)} (all_failed)"
        if pending:
            return _WAIT, "", ""
        return (_GO, "", "") if failed else (Status.SKIPPED, "TriggerNotMet", "no upstream failed (all_failed)")
    if policy == "all_done":
        return (_WAIT, "", "") if pending else (_GO, "", "")
    if policy == "one_succeeded":
        if succeeded or not ups:
            return _GO, "", ""
        if pending:
            return _WAIT, "", ""
        return Status.UPSTREAM_FAILED, "UpstreamFailed", "no upstream succeeded (one_succeeded)"
    if policy == "one_failed":
        if failed:
            return _GO, "", ""
        if pending:
            return _WAIT, "", ""
        return Status.SKIPPED, "TriggerNotMet", "no upstream failed (one_failed)"
    # one_done
    if finished or not ups:
        return _GO, "", ""
    if pending:
        return _WAIT, "", ""
    return Status.SKIPPED, "TriggerNotMet", "every upstream was skipped (one_done)"


def _context(graph: DagGraph, states: Mapping[str, NodeState]) -> dict[str, Any]:
    ops = {
        name: run_context(uuid=s.run, status=s.status, outputs=s.outputs, inputs=s.inputs) for name, s in states.items()
    }
    return {"ops": ops, "dag": {"inputs": dict(graph.inputs)}, "params": dict(graph.inputs)}


def _derived_status(statuses: Mapping[str, str | None]) -> tuple[str, str, str]:
    values = list(statuses.values())
    failed = sorted(n for n, s in statuses.items() if s in FAILURES)
    if failed:
        return Status.FAILED, "OperationsFailed", f"{', '.join(failed)} failed"
    stopped = sorted(n for n, s in statuses.items() if s == Status.STOPPED)
    if stopped:
        return Status.STOPPED, "OperationsStopped", f"{', '.join(stopped)} stopped"
    if values and all(s == Status.SKIPPED for s in values):
        return Status.SKIPPED, "AllSkipped", "every operation was skipped"
    return (
        Status.SUCCEEDED,
        "Succeeded",
        f"{sum(1 for s in values if s == Status.SUCCEEDED)} of {len(values)} succeeded",
    )


def next_step(graph: DagGraph, states: Mapping[str, NodeState], now: dt.datetime, dag_run: str = "") -> DagStep:
    """One step of the DAG run `dag_run` at `now`; `states` holds the ops that have a run or a mark."""
    current: dict[str, str | None] = {name: (states[name].status if name in states else None) for name in graph.order}
    results = [
        early_stopping.Result(states[n].status if n in states else None, dict(states[n].outputs) if n in states else {})
        for n in graph.order
    ]
    stop_verdict = early_stopping.check(graph.early_stopping, results, len(graph.order))
    if stop_verdict is not None:
        stop_marks = tuple(
            Mark(n, Status.SKIPPED, stop_verdict.reason, f"not started: {stop_verdict.message}")
            for n in graph.order
            if current[n] is None
        )
        running = tuple(n for n in graph.order if is_active(current[n]))
        settled = not running
        return DagStep(
            at=now,
            mark=stop_marks,
            stop=running,
            status=stop_verdict.status if settled else None,
            reason=stop_verdict.reason if settled else "",
            message=stop_verdict.message if settled else "",
        )

    context = _context(graph, states)
    marks: list[Mark] = []
    ready: list[Start] = []
    for name in graph.order:
        if current[name] is not None:
            continue
        node = graph.nodes[name]
        # Marks made earlier in this loop count, so a failure propagates down a chain in one step.
        verdict, reason, message = _policy(node, current)
        if verdict == _WAIT:
            continue
        if verdict != _GO:
            marks.append(Mark(name, verdict, reason, message))
            current[name] = verdict
            continue
        try:
            params = resolve_params(node.params, context, roots=("ops", "dag"))
        except RefError as e:
            marks.append(Mark(name, Status.FAILED, "UnresolvedParam", str(e)))
            current[name] = Status.FAILED
            continue
        if node.conditions:
            names = {**context, **params, "params": {**dict(graph.inputs), **params}}
            try:
                ok = evaluate(node.conditions, names)
            except ConditionError as e:
                marks.append(Mark(name, Status.FAILED, "InvalidConditions", f"conditions {node.conditions!r}: {e}"))
                current[name] = Status.FAILED
                continue
            if not ok:
                marks.append(
                    Mark(name, Status.SKIPPED, "ConditionsNotMet", f"conditions {node.conditions!r} are false")
                )
                current[name] = Status.SKIPPED
                continue
        ready.append(Start(name, params, f"dag:{dag_run}:{name}"))

    active = sum(1 for n in graph.order if is_active(current[n]))
    slots = len(ready) if graph.concurrency is None else max(0, graph.concurrency - active)
    starts = tuple(ready[:slots])
    for s in starts:
        current[s.name] = "created"

    status = reason = message = ""
    if all(is_done(s) for s in current.values()):
        status, reason, message = _derived_status(current)
    return DagStep(at=now, start=starts, mark=tuple(marks), status=status or None, reason=reason, message=message)


__all__ = [
    "TRIGGER_POLICIES",
    "DagError",
    "DagGraph",
    "DagNode",
    "DagStep",
    "Mark",
    "NodeState",
    "Start",
    "build_graph",
    "graph_from_spec",
    "next_step",
]
