"""The tracking database: what the reconciler started, why, and what became of it.

Other parts use `Store` (writes and queries), `create_engine_for` (SQLite or PostgreSQL with the
right settings) and the migration functions; tables are exported for typing and the read API.
"""

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
from reconciler.tracking.store import (
    CreatedRun,
    DueTick,
    LatestStatus,
    PendingEvent,
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
    "NotFound",
    "Operation",
    "OrchestratedRun",
    "OutboxBacklog",
    "OutboxEntry",
    "PendingEvent",
    "Point",
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
