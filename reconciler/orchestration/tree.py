"""Runs that contain runs: creating a run, and advancing a DAG or a matrix from its children's rows.

A DAG or matrix run is never submitted to a backend. `launch` records a run and, when it is a
container, expands it at once into its first children (recursively: a DAG op may be a matrix);
`advance` is one step of `scheduling.dag.next_step` or `scheduling.matrix.progress` over the
children as the tracking DB has them. Each step runs in one transaction holding the parent's row
lock, so two daemons advancing the same parent serialise, and a child is created once whoever
gets there first (its cause id is `dag:<parent>:<op>` or `matrix:<parent>:<index>`).

DAG ops the step marks (skipped, upstream_failed, or failed for an op that cannot be composed)
become runs that never start, recorded with their final status here, so the DAG's history shows
every op. The parent's own status (running, then the derived final one) comes back as a
`StatusUpdate` for the daemon to record, because recording a status is where the daemon hangs its
side effects (commit statuses, subscriptions, hooks, the grandparent's progress).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from reconciler.model import Cause, OpKey, RunRequest
from reconciler.orchestration.specs import (
    DAG,
    RecordRun,
    RecordRuns,
    ScheduleOptions,
    child_key,
    container_of,
    dag_node_effective,
    dag_operations,
    fallback_seed,
    request_for,
    trial_effective,
    with_params,
)
from reconciler.orchestration.work import NewRun, StatusUpdate, Work
from reconciler.render.templates import param_values
from reconciler.scheduling.dag import DagError, NodeState, graph_from_spec, next_step
from reconciler.scheduling.early_stopping import stop_trial
from reconciler.scheduling.matrix import MatrixError, Trial, effective_seed, progress
from reconciler.scheduling.refs import RefError
from reconciler.spec.compose import ComposeError
from reconciler.spec.polyaxonfile import Polyaxonfile
from reconciler.statuses import NOT_STARTED, Status, is_active, is_done
from reconciler.tracking import OrchestratedRun, Run, Store, Tx

log = logging.getLogger(__name__)

ORCHESTRATED = "orchestrated"
_SPEC_ERRORS = (DagError, MatrixError, ComposeError, ValidationError, RefError, KeyError, TypeError)


@dataclass(frozen=True)
class Context:
    """What every orchestration step needs: the DB, the one way to record a run (the applier's,
    one run or a batch of them), and the daemon's callbacks."""

    store: Store
    record: RecordRun
    record_many: RecordRuns
    options_for: Callable[[OpKey], ScheduleOptions]
    outputs_of: Callable[[str], Mapping[str, Any]]
    resolve_hub: Callable[[OpKey, str, Mapping[str, Any]], dict[str, Any] | None] | None = None

    def outputs(self, run: str) -> dict[str, Any]:
        """A finished run's outputs; a backend that cannot say yields none (logged), never an error."""
        try:
            return dict(self.outputs_of(run))
        except Exception:  # the backend's failure must not stop the parent's progress
            log.warning("cannot read the outputs of run %s", run, exc_info=True)
            return {}


def launch(
    ctx: Context,
    s: Tx,
    request: RunRequest,
    *,
    now: dt.datetime,
    parent: str | None = None,
    node: str | None = None,
    trial_index: int | None = None,
    meta: Mapping[str, Any] | None = None,
    child_mode: str | None = None,
) -> tuple[Run, Work]:
    """Record `request`; a new leaf is returned for submission, a new container is expanded."""
    run, new = ctx.record(
        request, now, session=s, parent=parent, node=node, trial_index=trial_index, meta=meta, child_mode=child_mode
    )
    return run, launched(ctx, s, request, run, new, now=now, parent=parent)


def launched(
    ctx: Context, s: Tx, request: RunRequest, run: Run, new: bool, *, now: dt.datetime, parent: str | None = None
) -> Work:
    """What follows recording `request` as `run` (`new`: it was not there before): a new leaf is
    returned for submission, a new container is expanded; a run recorded before, nothing."""
    if not new:
        return Work()
    container = container_of(request.effective)
    if container is None:
        return Work(new_runs=(NewRun(request, str(run.status), parent),))
    return begin(ctx, s, run, request, container, now)


def begin(ctx: Context, s: Tx, run: Run, request: RunRequest, container: str, now: dt.datetime) -> Work:
    """Make `run` a container and take its first step."""
    assert run.id is not None
    row = ctx.store.run_detail(run.id, session=s)
    if row is None:  # a run recorded before revision 0005 gave every run its detail row
        row = OrchestratedRun(run_id=run.id, params=dict(request.params), namespace=request.namespace, created_at=now)
    row.container = container
    if run.spec is None:
        run.spec = dict(request.effective)
    # The daemon's mark for runs no backend holds (so a missing object is not drift).
    run.backend_ref = run.backend_ref or ORCHESTRATED
    ctx.store.save(run, row, session=s)
    return advance(ctx, s, run, row, now, {})


def prefetch_outputs(ctx: Context, parent: str) -> dict[str, dict[str, Any]]:
    """Outputs of the parent's succeeded children not read yet, fetched outside any transaction."""
    pending = [
        run.name
        for cause in (Cause.DAG, Cause.MATRIX)
        for run, row in ctx.store.children(parent, cause)
        if row.outputs is None and run.status == Status.SUCCEEDED
    ]
    return {name: ctx.outputs(name) for name in pending}


def advance_parent(ctx: Context, parent: str, now: dt.datetime) -> Work:
    """One step of the container `parent` (after a child's transition, or on resume)."""
    fetched = prefetch_outputs(ctx, parent)
    with ctx.store.unit_of_work() as s:
        run = ctx.store.lock_run(parent, s)
        if run is None or run.id is None:
            return Work()
        row = ctx.store.run_detail(run.id, session=s)
        if row is None or row.container is None:
            return Work()
        return advance(ctx, s, run, row, now, fetched)


def advance(
    ctx: Context, s: Tx, parent: Run, row: OrchestratedRun, now: dt.datetime, fetched: Mapping[str, dict[str, Any]]
) -> Work:
    if is_done(parent.status):
        return Work()  # a finished parent (stopped by hand, settled) starts nothing more
    try:
        if row.container == DAG:
            work = _advance_dag(ctx, s, parent, row, now, fetched)
        else:
            work = _advance_matrix(ctx, s, parent, row, now, fetched)
    except _SPEC_ERRORS as e:
        return Work(updates=(StatusUpdate(parent.name, Status.FAILED, "InvalidSpec", f"cannot progress: {e}"),))
    settled = any(u.run == parent.name for u in work.updates)
    if not settled and parent.status in NOT_STARTED:
        work += Work(
            updates=(StatusUpdate(parent.name, Status.RUNNING, "Started", f"{row.container} children started"),)
        )
    return work


def _outputs_of_child(run: Run, row: OrchestratedRun, fetched: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    if row.outputs is None and is_done(run.status):
        # Only succeeded runs have outputs worth reading; read once, then kept on the row.
        if run.status != Status.SUCCEEDED:
            row.outputs = {}
        elif run.name in fetched:
            row.outputs = dict(fetched[run.name])
    return dict(row.outputs or {})


def _advance_dag(
    ctx: Context, s: Tx, parent: Run, row: OrchestratedRun, now: dt.datetime, fetched: Mapping[str, dict[str, Any]]
) -> Work:
    spec_dict = dict(parent.spec or {})
    model = Polyaxonfile.model_validate(spec_dict)
    inputs = param_values(spec_dict, row.params)
    graph = graph_from_spec(model.run, inputs)
    parent_key = OpKey.parse(ctx.store.op_key_by_id(parent.operation_id, session=s))
    states: dict[str, NodeState] = {}
    for run, krow in ctx.store.children(parent.name, Cause.DAG, session=s):
        if krow.node is not None:
            states[krow.node] = NodeState(str(run.status), run.name, _outputs_of_child(run, krow, fetched), krow.params)
            ctx.store.save(krow, session=s)
    commit = parent.commit_sha or ""
    parts: list[Work] = []

    def mark(node: str, status: str, reason: str, message: str) -> None:
        try:
            effective = dag_node_effective(spec_dict, node)
        except (ComposeError, ValidationError):
            effective = dict(dag_operations(spec_dict).get(node) or {"name": node})
        request = request_for(
            child_key(parent_key, node),
            effective,
            cause=Cause.DAG,
            cause_id=f"dag:{parent.name}:{node}",
            commit=commit,
            namespace=row.namespace,
        )
        run, _ = ctx.record(
            request, now, session=s, parent=parent.name, node=node, child_mode="dag-op",
            final=(Status(status), reason, message),
        )  # fmt: skip
        states[node] = NodeState(status, run.name)

    for _ in range(len(graph.order) + 1):
        step = next_step(graph, states, now, dag_run=parent.name)
        changed = False
        for m in step.mark:
            mark(m.name, m.status, m.reason, m.message)
            changed = True
        for start in step.start:
            try:
                effective = with_params(dag_node_effective(spec_dict, start.name), start.params)
            except (ComposeError, ValidationError) as e:
                mark(start.name, Status.FAILED, "InvalidOperation", f"cannot compose {start.name}: {e}")
                changed = True
                continue
            request = request_for(
                child_key(parent_key, start.name),
                effective,
                cause=Cause.DAG,
                cause_id=start.cause_id,
                commit=commit,
                namespace=row.namespace,
                params=start.params,
            )
            run, started = launch(ctx, s, request, now=now, parent=parent.name, node=start.name, child_mode="dag-op")
            parts.append(started)
            states[start.name] = NodeState(str(run.status), run.name, inputs=start.params)
        parts.append(Work(stops=tuple(states[n].run for n in step.stop if n in states)))
        if step.status is not None:
            parts.append(Work(updates=(StatusUpdate(parent.name, step.status, step.reason, step.message),)))
            break
        if not changed:
            break
    return Work.merge(parts)


def _advance_matrix(
    ctx: Context, s: Tx, parent: Run, row: OrchestratedRun, now: dt.datetime, fetched: Mapping[str, dict[str, Any]]
) -> Work:
    spec_dict = dict(parent.spec or {})
    matrix = Polyaxonfile.model_validate(spec_dict).matrix
    if matrix is None:
        raise MatrixError("the run has no matrix")
    if row.seed is None:
        row.seed = effective_seed(matrix, fallback_seed(parent.name))
        ctx.store.save(row, session=s)
    kids = ctx.store.children(parent.name, Cause.MATRIX, session=s)
    trials = []
    for run, krow in kids:
        trials.append(Trial(krow.params, str(run.status), _outputs_of_child(run, krow, fetched), krow.meta))
        ctx.store.save(krow, session=s)
    step = progress(matrix, trials, row.seed)
    parent_key = OpKey.parse(ctx.store.op_key_by_id(parent.operation_id, session=s))
    parts: list[Work] = []
    for trial in step.new:
        request = request_for(
            child_key(parent_key, "trial"),
            trial_effective(spec_dict, trial.params),
            cause=Cause.MATRIX,
            cause_id=f"matrix:{parent.name}:{trial.index}",
            commit=parent.commit_sha or "",
            namespace=row.namespace,
            params=trial.params,
        )
        _, started = launch(
            ctx,
            s,
            request,
            now=now,
            parent=parent.name,
            trial_index=trial.index,
            meta=trial.meta,
            child_mode="matrix-trial",
        )
        parts.append(started)
    parts.append(Work(stops=tuple(kids[i][0].name for i in step.stop if i < len(kids))))
    if step.tuner is not None:
        message = "iterative matrices with a tuner are not supported by the reconciler"
        parts.append(Work(updates=(StatusUpdate(parent.name, Status.FAILED, "TunerUnsupported", message),)))
    elif step.status is not None:
        parts.append(Work(updates=(StatusUpdate(parent.name, step.status, step.reason, step.message),)))
    return Work.merge(parts)


def judge_child(ctx: Context, child: str, now: dt.datetime) -> Work:
    """Stop an active DAG op or trial that its parent's stopping policy judges too poor, on the
    values it and its siblings reported so far (`scheduling.early_stopping.stop_trial`)."""
    run = ctx.store.run(child)
    if run is None or run.parent is None or not is_active(run.status) or run.cause not in (Cause.DAG, Cause.MATRIX):
        return Work()
    parent = ctx.store.run(run.parent)
    if parent is None or is_done(parent.status) or not parent.spec:
        return Work()
    try:
        model = Polyaxonfile.model_validate(parent.spec)
        holder = model.matrix if run.cause == Cause.MATRIX else model.run
    except ValidationError:
        return Work()
    rules = [r for r in getattr(holder, "early_stopping", None) or () if getattr(r, "policy", None) is not None]
    if not rules:
        return Work()
    siblings = {r.name: str(r.status) for r, _ in ctx.store.children(parent.name, Cause(run.cause))}
    series = {rule.metric: ctx.store.metric_of_runs(list(siblings), rule.metric) for rule in rules}
    verdict = stop_trial(rules, child, series, siblings)
    if verdict is None:
        return Work()
    log.info("early stopping %s: %s", child, verdict.message)
    return Work(updates=(StatusUpdate(child, Status.STOPPING, verdict.reason, verdict.message),), stops=(child,))


def active_children(ctx: Context, parent: str) -> tuple[str, ...]:
    """Children still active, to stop when their parent ended (stopped by hand, or failed)."""
    return tuple(
        run.name
        for cause in (Cause.DAG, Cause.MATRIX)
        for run, _ in ctx.store.children(parent, cause)
        if is_active(run.status)
    )


__all__ = [
    "Context",
    "active_children",
    "advance",
    "advance_parent",
    "begin",
    "judge_child",
    "launch",
    "prefetch_outputs",
]
