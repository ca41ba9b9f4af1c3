"""Event subscriptions: who follows which operation, and which transitions were consumed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from reconciler.model import OpKey
from reconciler.statuses import (
    Status,
    statuses_for_trigger,
)
from reconciler.tracking.db import table
from reconciler.tracking.errors import NotFound
from reconciler.tracking.runs import RunsMixin
from reconciler.tracking.tables import (
    ConsumedTransition,
    Operation,
    Repo,
    Run,
    StatusChange,
    Subscriber,
    Subscription,
)

_t = table


class PendingEvent(NamedTuple):
    change: StatusChange
    run: Run


class SubscriptionsMixin(RunsMixin):
    def upsert_subscription(
        self,
        op_key: str,
        source_op_key: str,
        kinds: Iterable[Status],
        now: dt.datetime,
        session: Session | None = None,
    ) -> Subscription:
        """`op_key` starts a run when a run of `source_op_key` enters one of `kinds` after `now`."""
        kind_values = sorted({str(Status(k)) for k in kinds})
        with self._tx(session) as s:
            op_id, source_id = self._op_id(s, op_key), self._op_id(s, source_op_key)
            self.insert_ignore(
                s,
                Subscription,
                {
                    "operation_id": op_id,
                    "source_operation_id": source_id,
                    "kinds": kind_values,
                    "created_at": now,
                    "updated_at": now,
                },
                ["operation_id", "source_operation_id"],
            )
            c = _t(Subscription).c
            sub = s.execute(
                select(Subscription)
                .where(c.operation_id == op_id, c.source_operation_id == source_id)
                .with_for_update()
            ).scalar_one()
            if sub.kinds != kind_values:
                sub.kinds, sub.updated_at = kind_values, now
                s.add(sub)
                s.flush()
            return sub

    def remove_subscription(self, op_key: str, source_op_key: str, session: Session | None = None) -> None:
        with self._tx(session) as s:
            op_id, source_id = self._op_id(s, op_key), self._op_id(s, source_op_key)
            c = _t(Subscription).c
            sub = s.execute(
                select(Subscription).where(c.operation_id == op_id, c.source_operation_id == source_id)
            ).scalar_one_or_none()
            if sub is not None:
                s.delete(sub)
                s.flush()

    def subscriptions(self, source_op_key: str | None = None, session: Session | None = None) -> list[Subscription]:
        c = _t(Subscription).c
        stmt = select(Subscription).order_by(c.id)
        if source_op_key is not None:
            stmt = stmt.join(Operation, _t(Operation).c.id == c.source_operation_id).where(
                _t(Operation).c.op_key == source_op_key
            )
        with self._read(session) as s:
            return list(s.execute(stmt).scalars())

    def subscription_links(self, op_key: str, session: Session | None = None) -> list[tuple[str, str, list[str]]]:
        """(subscriber, source, kinds) of every subscription `op_key` takes part in, either side."""
        c = _t(Subscription).c
        sub, src = _t(Operation).alias("subscriber_op"), _t(Operation).alias("source_op")
        stmt = (
            select(sub.c.op_key, src.c.op_key, c.kinds)
            .join(sub, sub.c.id == c.operation_id)
            .join(src, src.c.id == c.source_operation_id)
            .where(or_(sub.c.op_key == op_key, src.c.op_key == op_key))
            .order_by(c.id)
        )
        with self._read(session) as s:
            return [(str(a), str(b), list(k or [])) for a, b, k in s.execute(stmt)]

    def pending_events(
        self, subscription_id: int, limit: int | None = None, session: Session | None = None
    ) -> list[PendingEvent]:
        """Transitions that should fire the subscription and were not consumed yet, oldest first."""
        with self._read(session) as s:
            sub = s.get(Subscription, subscription_id)
            if sub is None:
                raise NotFound(f"subscription {subscription_id} does not exist")
            wanted: set[str] = set()
            for kind in sub.kinds:
                wanted |= {str(x) for x in statuses_for_trigger(Status(kind))}
            sc, r, ct = _t(StatusChange).c, _t(Run).c, _t(ConsumedTransition).c
            consumed = exists().where(ct.subscription_id == subscription_id, ct.status_change_id == sc.id)
            stmt = (
                select(StatusChange, Run)
                .join(Run, r.id == sc.run_id)
                .where(
                    r.operation_id == sub.source_operation_id,
                    sc.status.in_(sorted(wanted)),
                    # A note (a row that keeps the status, see `note`) is no transition.
                    or_(sc.previous.is_(None), sc.previous != sc.status),
                    sc.at >= sub.created_at,
                    ~consumed,
                )
                .order_by(sc.at, sc.id)
                .limit(limit)
            )
            return [PendingEvent(change, run) for change, run in s.execute(stmt).all()]

    def consume_transition(
        self,
        subscription_id: int,
        status_change_id: int,
        now: dt.datetime,
        run: Run | str | None = None,
        session: Session | None = None,
    ) -> bool:
        """Mark a transition as handled for a subscription; False when it already was.

        Do it in the same unit of work as creating the downstream run.
        """
        with self._tx(session) as s:
            run_id = self._lock_run(s, run).id if run is not None else None
            return self.insert_ignore(
                s,
                ConsumedTransition,
                {
                    "subscription_id": subscription_id,
                    "status_change_id": status_change_id,
                    "consumed_at": now,
                    "run_id": run_id,
                },
                ["subscription_id", "status_change_id"],
            )

    def register_subscriber(
        self,
        op_key: str | OpKey,
        *,
        spec_hash: str,
        commit_sha: str | None,
        kind: str,
        events: Iterable[Mapping[str, Any]],
        spec: Mapping[str, Any],
        namespace: str | None,
        now: dt.datetime,
        session: Session,
    ) -> None:
        """Keep an operation's compiled spec, so a transition builds its run from the DB alone."""
        oid = self.op_id(op_key, session=session)
        if oid is None:
            raise NotFound(f"operation {op_key} is not tracked")
        values = {
            "spec_hash": spec_hash,
            "commit_sha": commit_sha,
            "kind": kind,
            "events": [dict(e) for e in events],
            "spec": dict(spec),
            "namespace": namespace,
            "updated_at": now,
        }
        if not self.insert_ignore(
            session, Subscriber, {"operation_id": oid, "registered_at": now, **values}, ["operation_id"]
        ):
            row = session.get(Subscriber, oid, with_for_update=True, populate_existing=True)
            assert row is not None
            for name, value in values.items():
                setattr(row, name, value)
            session.add(row)
            session.flush()

    def subscriber(self, operation_id: int, session: Session | None = None) -> Subscriber | None:
        with self._read(session) as s:
            return s.get(Subscriber, operation_id)

    def subscription(self, subscription_id: int, session: Session | None = None) -> Subscription | None:
        with self._read(session) as s:
            return s.get(Subscription, subscription_id)

    def subscriptions_following(self, source_operation_id: int | None, session: Session | None = None) -> list[int]:
        """Ids of the subscriptions to an operation's runs (None: every subscription)."""
        c = _t(Subscription).c
        stmt = select(c.id).order_by(c.id)
        if source_operation_id is not None:
            stmt = stmt.where(c.source_operation_id == source_operation_id)
        with self._read(session) as s:
            return [int(i) for i in s.execute(stmt).scalars()]

    def set_consumed_run(self, subscription_id: int, change_id: int, run_id: int, session: Session) -> None:
        c = _t(ConsumedTransition)
        session.connection().execute(
            update(c)
            .where(c.c.subscription_id == subscription_id, c.c.status_change_id == change_id)
            .values(run_id=run_id)
        )

    def keep_subscriptions(self, op_key: str | OpKey, sources: Iterable[str], session: Session) -> None:
        """Drop `op_key`'s subscriptions to operations other than `sources`."""
        oid = self.op_id(op_key, session=session)
        keep = [i for i in (self.op_id(k, session=session) for k in sources) if i is not None]
        c = _t(Subscription).c
        session.execute(delete(_t(Subscription)).where(c.operation_id == oid, c.source_operation_id.not_in(keep)))

    def unsubscribe(self, op_key: str | OpKey, session: Session | None = None) -> None:
        """Forget an operation's subscriptions and its registered spec (it no longer has `events`)."""
        with self._tx(session) as s:
            oid = self.op_id(op_key, session=s)
            if oid is None:
                return
            s.execute(delete(_t(Subscription)).where(_t(Subscription).c.operation_id == oid))
            s.execute(delete(_t(Subscriber)).where(_t(Subscriber).c.operation_id == oid))

    def operation_of_run(self, name_or_uuid: str, session: Session | None = None) -> str | None:
        """The op key of the run named (or with the uuid) `name_or_uuid` (an event ref `runs.<x>`)."""
        rc = _t(Run).c
        with self._read(session) as s:
            row = s.execute(
                select(rc.operation_id).where((rc.name == name_or_uuid) | (rc.uuid == name_or_uuid))
            ).first()
            return None if row is None else self.op_key_by_id(int(row[0]), session=s)

    def tracked_subscriptions(
        self, repo: str, session: Session | None = None
    ) -> list[tuple[str, str, list[dict[str, Any]]]]:
        """(op key, spec hash, events) of every subscriber registered for `repo`."""
        o, r, sub = _t(Operation).c, _t(Repo).c, _t(Subscriber).c
        in_repo = o.repo_id == select(r.id).where(r.name == repo).scalar_subquery()
        stmt = (
            select(o.op_key, sub.spec_hash, sub.events)
            .join_from(_t(Subscriber), _t(Operation), sub.operation_id == o.id)
            .where(in_repo)
        )
        with self._read(session) as s:
            return [
                (str(k), str(h), [e for e in events or [] if isinstance(e, dict)])
                for k, h, events in s.execute(stmt).all()
            ]

    def subscriber_namespaces(self, repo: str, session: Session | None = None) -> dict[str, str | None]:
        """The namespace each of `repo`'s subscribers was registered with, by op key."""
        o, r, sub = _t(Operation).c, _t(Repo).c, _t(Subscriber).c
        in_repo = o.repo_id == select(r.id).where(r.name == repo).scalar_subquery()
        stmt = select(o.op_key, sub.namespace).join_from(_t(Subscriber), _t(Operation), sub.operation_id == o.id)
        with self._read(session) as s:
            return {str(k): ns for k, ns in s.execute(stmt.where(in_repo)).all()}
