"""The tracking database: what the reconciler started, why, and what became of it.

Other parts use `Store` (writes and queries; `Reader` is its read side for commands that only
look), `create_engine_for` (SQLite or PostgreSQL with the
right settings) and the migration functions; tables are exported for typing and the read API.

Names are imported from their module when first used (PEP 562), not when the package is: a
command that only reads runs (`reconciler runs list`) must not pay for the outbox, the leases,
the hand-offs or the migration tool, and importing any `reconciler.tracking.<module>` runs this
file first. `_EXPORTS` says where each name lives; the imports under TYPE_CHECKING say the same
to type checkers (a test holds the two to each other).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.tracking.db import Tx
    from reconciler.tracking.engine import create_engine_for, safe_url
    from reconciler.tracking.errors import (
        DatabaseNotReady,
        IllegalTransition,
        NotFound,
        RunNameConflict,
        TrackingError,
    )
    from reconciler.tracking.handoffs import CHANNEL as HANDOFF_CHANNEL
    from reconciler.tracking.handoffs import HandoffListener
    from reconciler.tracking.leases import LeaseRow, Member
    from reconciler.tracking.migrate import (
        UPGRADE_COMMAND,
        check_ready,
        current_revision,
        ensure_ready,
        head_revision,
        upgrade,
    )
    from reconciler.tracking.outbox import OutboxBacklog
    from reconciler.tracking.reader import Reader
    from reconciler.tracking.store import (
        CreatedRun,
        DueTick,
        LatestStatus,
        NewRunRow,
        OperationRow,
        PendingEvent,
        PlannerRun,
        Point,
        ReportLimit,
        ScheduleMove,
        SeriesPoint,
        Store,
        TickRow,
        preview_cause,
        preview_cause_prefix,
        run_uuid,
    )
    from reconciler.tracking.tables import (
        ConsumedTransition,
        GitCommit,
        Handoff,
        Instance,
        Operation,
        OrchestratedRun,
        OutboxEntry,
        Repo,
        RepoLease,
        Run,
        RunMetric,
        RunOutput,
        ScheduleState,
        ScheduleTick,
        ShardMember,
        StatusChange,
        Subscriber,
        Subscription,
        WebhookDelivery,
    )

# name -> (module under reconciler.tracking, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "ConsumedTransition": ("tables", "ConsumedTransition"),
    "CreatedRun": ("store", "CreatedRun"),
    "DatabaseNotReady": ("errors", "DatabaseNotReady"),
    "DueTick": ("store", "DueTick"),
    "GitCommit": ("tables", "GitCommit"),
    "HANDOFF_CHANNEL": ("handoffs", "CHANNEL"),
    "Handoff": ("tables", "Handoff"),
    "HandoffListener": ("handoffs", "HandoffListener"),
    "IllegalTransition": ("errors", "IllegalTransition"),
    "Instance": ("tables", "Instance"),
    "LatestStatus": ("store", "LatestStatus"),
    "LeaseRow": ("leases", "LeaseRow"),
    "Member": ("leases", "Member"),
    "NewRunRow": ("store", "NewRunRow"),
    "NotFound": ("errors", "NotFound"),
    "Operation": ("tables", "Operation"),
    "OperationRow": ("store", "OperationRow"),
    "OrchestratedRun": ("tables", "OrchestratedRun"),
    "OutboxBacklog": ("outbox", "OutboxBacklog"),
    "OutboxEntry": ("tables", "OutboxEntry"),
    "PendingEvent": ("store", "PendingEvent"),
    "PlannerRun": ("store", "PlannerRun"),
    "Point": ("store", "Point"),
    "Repo": ("tables", "Repo"),
    "RepoLease": ("tables", "RepoLease"),
    "Reader": ("reader", "Reader"),
    "ReportLimit": ("store", "ReportLimit"),
    "Run": ("tables", "Run"),
    "RunMetric": ("tables", "RunMetric"),
    "RunNameConflict": ("errors", "RunNameConflict"),
    "RunOutput": ("tables", "RunOutput"),
    "ScheduleMove": ("store", "ScheduleMove"),
    "ScheduleState": ("tables", "ScheduleState"),
    "ScheduleTick": ("tables", "ScheduleTick"),
    "SeriesPoint": ("store", "SeriesPoint"),
    "ShardMember": ("tables", "ShardMember"),
    "StatusChange": ("tables", "StatusChange"),
    "Store": ("store", "Store"),
    "Subscriber": ("tables", "Subscriber"),
    "Subscription": ("tables", "Subscription"),
    "TickRow": ("store", "TickRow"),
    "TrackingError": ("errors", "TrackingError"),
    "Tx": ("db", "Tx"),
    "UPGRADE_COMMAND": ("migrate", "UPGRADE_COMMAND"),
    "WebhookDelivery": ("tables", "WebhookDelivery"),
    "check_ready": ("migrate", "check_ready"),
    "create_engine_for": ("engine", "create_engine_for"),
    "current_revision": ("migrate", "current_revision"),
    "ensure_ready": ("migrate", "ensure_ready"),
    "head_revision": ("migrate", "head_revision"),
    "preview_cause": ("store", "preview_cause"),
    "preview_cause_prefix": ("store", "preview_cause_prefix"),
    "run_uuid": ("store", "run_uuid"),
    "safe_url": ("engine", "safe_url"),
    "upgrade": ("migrate", "upgrade"),
}


if not TYPE_CHECKING:  # hidden from mypy, which would otherwise let any misspelt name through as Any

    def __getattr__(name: str) -> Any:
        try:
            module, attribute = _EXPORTS[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        value = getattr(import_module(f"{__name__}.{module}"), attribute)
        globals()[name] = value  # once: later lookups find it without coming back here
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_EXPORTS})


__all__ = [
    "HANDOFF_CHANNEL",
    "UPGRADE_COMMAND",
    "ConsumedTransition",
    "CreatedRun",
    "DatabaseNotReady",
    "DueTick",
    "GitCommit",
    "Handoff",
    "HandoffListener",
    "IllegalTransition",
    "Instance",
    "LatestStatus",
    "LeaseRow",
    "Member",
    "NewRunRow",
    "NotFound",
    "Operation",
    "OperationRow",
    "OrchestratedRun",
    "OutboxBacklog",
    "OutboxEntry",
    "PendingEvent",
    "PlannerRun",
    "Point",
    "Reader",
    "Repo",
    "RepoLease",
    "ReportLimit",
    "Run",
    "RunMetric",
    "RunNameConflict",
    "RunOutput",
    "ScheduleMove",
    "ScheduleState",
    "ScheduleTick",
    "SeriesPoint",
    "ShardMember",
    "StatusChange",
    "Store",
    "Subscriber",
    "Subscription",
    "TickRow",
    "TrackingError",
    "Tx",
    "WebhookDelivery",
    "check_ready",
    "create_engine_for",
    "current_revision",
    "ensure_ready",
    "head_revision",
    "preview_cause",
    "preview_cause_prefix",
    "run_uuid",
    "safe_url",
    "upgrade",
]
