"""The tracking database: what the reconciler started, why, and what became of it.

Other parts use `Store` (writes and queries), `create_engine_for` (SQLite or PostgreSQL with the
right settings) and the migration functions; tables are exported for typing and the read API.
"""

from reconciler.tracking.engine import create_engine_for, safe_url
from reconciler.tracking.errors import (
    DatabaseNotReady,
    IllegalTransition,
    NotFound,
    RunNameConflict,
    TrackingError,
)
from reconciler.tracking.migrate import (
    UPGRADE_COMMAND,
    check_ready,
    current_revision,
    ensure_ready,
    head_revision,
    upgrade,
)
from reconciler.tracking.store import CreatedRun, DueTick, LatestStatus, PendingEvent, Store, run_uuid
from reconciler.tracking.tables import (
    CauseKind,
    ConsumedTransition,
    GitCommit,
    Operation,
    OutboxEntry,
    Repo,
    Run,
    ScheduleState,
    ScheduleTick,
    StatusChange,
    Subscription,
    WebhookDelivery,
)

__all__ = [
    "UPGRADE_COMMAND",
    "CauseKind",
    "ConsumedTransition",
    "CreatedRun",
    "DatabaseNotReady",
    "DueTick",
    "GitCommit",
    "IllegalTransition",
    "LatestStatus",
    "NotFound",
    "Operation",
    "OutboxEntry",
    "PendingEvent",
    "Repo",
    "Run",
    "RunNameConflict",
    "ScheduleState",
    "ScheduleTick",
    "StatusChange",
    "Store",
    "Subscription",
    "TrackingError",
    "WebhookDelivery",
    "check_ready",
    "create_engine_for",
    "current_revision",
    "ensure_ready",
    "head_revision",
    "run_uuid",
    "safe_url",
    "upgrade",
]
