"""Event subscriptions: which runs a status transition of an upstream run creates.

`events: [{kinds: [run_status_succeeded], ref: ops.train}]` subscribes an operation to the runs
of another operation in the same repo (`runs.<uuid>` names one fixed run). Given the
subscriptions and one transition, this returns the runs to create, each with a cause id derived
from the transition (upstream run, status and time of the status-history row). The tracking DB
keeps (op, cause id) unique, so handling the same transition twice, on a restart or on two
replicas, creates one run; a transition that creates nothing is still returned as consumed, so
the adapter can record that it was seen. Chains (A -> B -> C) need nothing special: B's runs
have transitions of their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.model import DesiredOp, OpKey, StatusTransition
from reconciler.scheduling.refs import RefError, resolve_params, run_context
from reconciler.spec.io import Param
from reconciler.statuses import event_matches


@dataclass(frozen=True)
class Subscription:
    op: OpKey
    kinds: frozenset[str]
    ref: str  # ops.<name> | runs.<uuid>
    params: Mapping[str, Param] = field(default_factory=dict)


def subscriptions_of(op: DesiredOp) -> list[Subscription]:
    """The subscriptions a desired operation declares (its `events`, params as written)."""
    raw_params = op.effective.get("params") or {}
    params = {
        name: Param.model_validate(value if isinstance(value, dict) else {"value": value})
        for name, value in raw_params.items()
    }
    return [
        Subscription(op.key, frozenset(str(k) for k in event.get("kinds", ())), str(event["ref"]), params)
        for event in op.events
        if isinstance(event, Mapping) and "ref" in event
    ]


@dataclass(frozen=True)
class UpstreamRun:
    """The run whose status changed, as the tracking DB has it."""

    name: str
    op: OpKey
    outputs: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventRun:
    op: OpKey
    cause_id: str
    upstream: str
    params: dict[str, Any]


@dataclass(frozen=True)
class EventProblem:
    """A subscriber that matched but cannot run: recorded against the transition, not dropped."""

    op: OpKey
    cause_id: str
    message: str


@dataclass(frozen=True)
class EventDecision:
    transition_id: str
    runs: tuple[EventRun, ...] = ()
    problems: tuple[EventProblem, ...] = ()


def transition_id(run: str, status: str, at: dt.datetime) -> str:
    stamp = at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"event:{run}:{status}@{stamp}"


def _matches(sub: Subscription, upstream: UpstreamRun) -> bool:
    kind, _, target = sub.ref.partition(".")
    if kind == "ops":
        return sub.op.repo == upstream.op.repo and target == upstream.op.name
    if kind == "runs":
        return target == upstream.name
    return False


def on_transition(
    subscriptions: Iterable[Subscription], upstream: UpstreamRun, transition: StatusTransition
) -> EventDecision:
    """The runs one transition creates, in a stable order (by op key)."""
    tid = transition_id(transition.run, transition.status, transition.at)
    ctx_run = run_context(
        uuid=upstream.name, status=transition.status, outputs=upstream.outputs, inputs=upstream.inputs
    )
    runs: list[EventRun] = []
    problems: list[EventProblem] = []
    seen: set[OpKey] = set()
    for sub in sorted(subscriptions, key=lambda s: (s.op, s.ref)):
        if sub.op in seen or not _matches(sub, upstream):
            continue
        if not any(event_matches(kind, transition.status) for kind in sub.kinds):
            continue
        # Two events entries of one op matching the same transition still make one run.
        seen.add(sub.op)
        if sub.op == upstream.op:
            problems.append(EventProblem(sub.op, tid, "an operation cannot subscribe to its own runs"))
            continue
        context = {"ops": {upstream.op.name: ctx_run}, "runs": {upstream.name: ctx_run}}
        try:
            params = resolve_params(sub.params, context, roots=("ops", "runs"))
        except RefError as e:
            problems.append(EventProblem(sub.op, tid, f"cannot resolve params from run {upstream.name}: {e}"))
            continue
        runs.append(EventRun(sub.op, tid, upstream.name, params))
    return EventDecision(tid, tuple(runs), tuple(problems))


__all__ = [
    "EventDecision",
    "EventProblem",
    "EventRun",
    "Subscription",
    "UpstreamRun",
    "on_transition",
    "subscriptions_of",
    "transition_id",
]
