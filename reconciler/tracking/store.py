"""The tracking store: every write and query the other parts make against the tracking DB.

`Store` is the one object the rest of the reconciler holds. It is composed of one mixin per
aggregate, each in its own module over the shared session helper (`db`): repos, commits and
operations (`repos`), runs and their history (`runs`), the commit-status outbox (`outbox`),
schedules and ticks (`schedules`), subscriptions and consumed events (`subscriptions`), webhook
deliveries (`webhooks`), the daemon's identity (`instance`), replicas' repo leases (`leases`)
and hand-offs between replicas (`handoffs`). No module outside `tracking/`
writes SQL.

Writes that must happen together (a status change and the commit status it causes) share one
transaction: each method takes an optional `session`, and `Store.unit_of_work()` opens one.

Idempotence lives in unique constraints (see `tables`): inserts are "insert, or do nothing on
conflict", then read back, so a retry after a crash finds what the first attempt committed.
On PostgreSQL, rows that several daemons may claim (the outbox) are taken with
`SELECT ... FOR UPDATE SKIP LOCKED`; on SQLite every writing transaction holds the single write
lock from its first statement (see `engine`), which gives the same guarantee by serialising.

Every time is passed in (`now`, `at`): nothing here reads the clock, so tests and the planner
decide what "now" is.
"""

from __future__ import annotations

from reconciler.tracking.handoffs import HandoffsMixin
from reconciler.tracking.instance import InstanceMixin
from reconciler.tracking.leases import LeasesMixin
from reconciler.tracking.outbox import OutboxMixin
from reconciler.tracking.reports import MAX_POINTS_PER_RUN, Point, ReportLimit, ReportsMixin, SeriesPoint
from reconciler.tracking.repos import OperationRow
from reconciler.tracking.runs import (
    CreatedRun,
    LatestStatus,
    NewRunRow,
    PlannerRun,
    preview_cause,
    preview_cause_prefix,
    run_uuid,
)
from reconciler.tracking.schedules import DueTick, ScheduleMove, SchedulesMixin, TickRow
from reconciler.tracking.subscriptions import PendingEvent, SubscriptionsMixin
from reconciler.tracking.webhooks import WebhooksMixin


class Store(
    SchedulesMixin,
    SubscriptionsMixin,
    OutboxMixin,
    WebhooksMixin,
    InstanceMixin,
    ReportsMixin,
    LeasesMixin,
    HandoffsMixin,
):
    """Tracking database access; one per process, safe to share between threads."""


__all__ = [
    "MAX_POINTS_PER_RUN",
    "CreatedRun",
    "DueTick",
    "LatestStatus",
    "NewRunRow",
    "OperationRow",
    "PendingEvent",
    "PlannerRun",
    "Point",
    "ReportLimit",
    "ScheduleMove",
    "SeriesPoint",
    "Store",
    "TickRow",
    "preview_cause",
    "preview_cause_prefix",
    "run_uuid",
]
