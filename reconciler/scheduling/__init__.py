"""Orchestration decisions, as pure functions of plain data and `now`.

Schedules (`ticks`), event subscriptions, DAG and matrix progress and hooks. (Retries and timeouts
of a run are its backend's: `backends.local.lifecycle`, Kubernetes' own `backoffLimit`.)
Nothing here reads a clock, a database or the network; the scheduling adapters (APScheduler job
store, daemon loop) call these functions and store what they return.
"""

from reconciler.scheduling.dag import DagGraph, DagNode, DagStep, NodeState, build_graph, graph_from_spec, next_step
from reconciler.scheduling.hooks import HookRun, hooks_to_fire
from reconciler.scheduling.matrix import MatrixStep, Trial, TrialRequest, matrix_status, progress, suggest
from reconciler.scheduling.subscriptions import EventDecision, Subscription, UpstreamRun, on_transition
from reconciler.scheduling.ticks import (
    ConcurrencyPolicy,
    PastRun,
    ScheduleSpec,
    TickDecision,
    decide,
    from_spec,
    next_ticks,
    tick_cause_id,
)

__all__ = [
    "ConcurrencyPolicy",
    "DagGraph",
    "DagNode",
    "DagStep",
    "EventDecision",
    "HookRun",
    "MatrixStep",
    "NodeState",
    "PastRun",
    "ScheduleSpec",
    "Subscription",
    "TickDecision",
    "Trial",
    "TrialRequest",
    "UpstreamRun",
    "build_graph",
    "decide",
    "from_spec",
    "graph_from_spec",
    "hooks_to_fire",
    "matrix_status",
    "next_step",
    "next_ticks",
    "on_transition",
    "progress",
    "suggest",
    "tick_cause_id",
]
