"""The part of the store that commands which only look at the tracking DB need.

`Reader` is `Store` without the aggregates a listing never touches (the commit-status outbox,
replicas' leases and hand-offs, webhook deliveries, metric reports, subscriptions): the same
query methods (`list_runs`, `history`, `operations`, `latest_status_per_op`, `schedules`, ...),
inherited from the same mixins, so each question still has one query. It exists because
importing the rest is a noticeable part of a CLI command's start-up (`reconciler runs list`,
bench/cli_bench.py).
"""

from __future__ import annotations

from reconciler.tracking.schedules import SchedulesMixin


class Reader(SchedulesMixin):
    """Runs with their history, operations and schedules: a subset of `Store`, the same methods."""


__all__ = ["Reader"]
