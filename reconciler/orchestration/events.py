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

from pydantic import ValidationError
from sqlalchemy import select

from reconciler.model import Cause, StatusTransition
from reconciler.orchestration import records, tree
from reconciler.orchestration.specs import request_for, with_params
from reconciler.orchestration.tree import Context
from reconciler.orchestration.work import Notice, Work
from reconciler.scheduling.lifecycle import SUCCEEDED
from reconciler.scheduling.subscriptions import Subscription as EventSubscription
from reconciler.scheduling.subscriptions import UpstreamRun, on_transition
from reconciler.spec.io import Param
from reconciler.tracking.store import PendingEvent
from reconciler.tracking.tables import Subscriber, Subscription

EVENT = "event"


def subscriptions_following(ctx: Context, source_operation_id: int | None) -> list[int]:
    c = records.table(Subscription).c
    stmt = select(c.id).order_by(c.id)
    if source_operation_id is not None:
        stmt = stmt.where(c.source_operation_id == source_operation_id)
    with records.read(ctx.store) as s:
        return [int(i) for i in s.execute(stmt).scalars()]


def fire_pending(ctx: Context, source_operation_id: int | None, now: dt.datetime) -> Work:
    """Handle the unconsumed transitions of the subscriptions following an operation (None: all)."""
    work = Work()
    for sub_id in subscriptions_following(ctx, source_operation_id):
        for event in ctx.store.pending_events(sub_id):
            work += fire(ctx, sub_id, event, now)
    return work


def fire(ctx: Context, sub_id: int, event: PendingEvent, now: dt.datetime) -> Work:
    upstream, change = event.run, event.change
    assert change.id is not None and upstream.id is not None
    # Outputs are read before the transaction: a backend call must not hold database locks.
    outputs = ctx.outputs(upstream.name) if str(change.status) == SUCCEEDED else {}
    with ctx.store.unit_of_work() as s:
        sub = s.get(Subscription, sub_id)
        if sub is None or not ctx.store.consume_transition(sub_id, change.id, now, session=s):
            return Work()
        key = records.op_key_of(s, sub.operation_id)
        reg = s.get(Subscriber, sub.operation_id)
        if reg is None:
            return Work(notices=(Notice(str(key), "NotSubscribed", "the subscriber has no registered spec"),))
        up_row = records.orchestrated(s, upstream.id)
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
                upstream.name, records.op_key_of(s, upstream.operation_id), outputs, up_row.params if up_row else {}
            ),
            StatusTransition(upstream.name, str(change.status), change.at),
        )
        work = Work(notices=tuple(Notice(str(p.op), "EventNotRun", p.message) for p in decision.problems))
        namespace = ctx.options_for(key).namespace
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
            run, launched = tree.launch(ctx, s, request, origin=EVENT, now=now)
            assert run.id is not None
            records.set_consumed_run(s, sub_id, change.id, run.id)
            work += launched
        return work


__all__ = ["fire", "fire_pending"]
