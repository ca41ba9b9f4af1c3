"""Event subscriptions fire exactly once per qualifying transition.

The tracking DB says which transitions a subscription has not consumed yet
(`store.pending_events`); each is handled in one transaction that consumes it
(`store.consume_transition`, unique per (subscription, status change)) and creates the run it
causes, so a transition handled twice, after a restart or by two daemons, creates one run. A
transition that creates nothing (a param that cannot be resolved) is consumed too, with a notice.
Handling every pending transition, not only the one just recorded, is what makes a crash between
recording a status and handling it harmless.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pydantic import ValidationError

from reconciler.model import Cause, OpKey, StatusTransition
from reconciler.orchestration import tree
from reconciler.orchestration.specs import request_for, with_params
from reconciler.orchestration.tree import Context
from reconciler.orchestration.work import Notice, Work
from reconciler.scheduling.subscriptions import Subscription as EventSubscription
from reconciler.scheduling.subscriptions import UpstreamRun, on_transition
from reconciler.spec.io import Param
from reconciler.statuses import Status
from reconciler.tracking import PendingEvent


def fire_pending(
    ctx: Context, source_operation_id: int | None, now: dt.datetime, owns: Callable[[str], bool] | None = None
) -> Work:
    """Handle the unconsumed transitions of the subscriptions following an operation (None: all),
    of the subscribers in repos `owns` accepts (all without it)."""
    parts: list[Work] = []
    for sub_id in ctx.store.subscriptions_following(source_operation_id):
        if owns is not None:
            sub = ctx.store.subscription(sub_id)
            if sub is None or not owns(OpKey.parse(ctx.store.op_key_by_id(sub.operation_id)).repo):
                continue
        for event in ctx.store.pending_events(sub_id):
            parts.append(fire(ctx, sub_id, event, now))
    return Work.merge(parts)


def fire(ctx: Context, sub_id: int, event: PendingEvent, now: dt.datetime) -> Work:
    upstream, change = event.run, event.change
    assert change.id is not None and upstream.id is not None
    # Outputs are read before the transaction: a backend call must not hold database locks.
    outputs = ctx.outputs(upstream.name) if str(change.status) == Status.SUCCEEDED else {}
    with ctx.store.unit_of_work() as s:
        sub = ctx.store.subscription(sub_id, session=s)
        if sub is None or not ctx.store.consume_transition(sub_id, change.id, now, session=s):
            return Work()
        key = OpKey.parse(ctx.store.op_key_by_id(sub.operation_id, session=s))
        reg = ctx.store.subscriber(sub.operation_id, session=s)
        if reg is None:
            return Work(notices=(Notice(str(key), "NotSubscribed", "the subscriber has no registered spec"),))
        up_row = ctx.store.run_detail(upstream.id, session=s)
        try:
            params = {
                name: Param.model_validate(value if isinstance(value, dict) else {"value": value})
                for name, value in (reg.spec.get("params") or {}).items()
            }
        except ValidationError as e:
            return Work(notices=(Notice(str(key), "InvalidParams", str(e)),))
        subscriptions = [
            EventSubscription(key, frozenset(str(k) for k in e.get("kinds") or ()), str(e["ref"]), params)
            for e in reg.events
            if isinstance(e, dict) and "ref" in e
        ]
        decision = on_transition(
            subscriptions,
            UpstreamRun(
                upstream.name,
                OpKey.parse(ctx.store.op_key_by_id(upstream.operation_id, session=s)),
                outputs,
                up_row.params if up_row else {},
            ),
            StatusTransition(upstream.name, str(change.status), change.at),
        )
        parts = [Work(notices=tuple(Notice(str(p.op), "EventNotRun", p.message) for p in decision.problems))]
        namespace = reg.namespace or ctx.options_for(key).namespace
        for wanted in decision.runs:
            if wanted.op != key:
                continue
            # The params go into the spec too, so the run row alone can rebuild the request.
            request = request_for(
                key,
                with_params(reg.spec, wanted.params),
                cause=Cause.EVENT,
                cause_id=wanted.cause_id,
                commit=reg.commit_sha or "",
                namespace=namespace,
                params=wanted.params,
                hash_=reg.spec_hash,
            )
            run, launched = tree.launch(ctx, s, request, now=now)
            assert run.id is not None
            ctx.store.set_consumed_run(sub_id, change.id, run.id, s)
            parts.append(launched)
        return Work.merge(parts)


__all__ = ["fire", "fire_pending"]
