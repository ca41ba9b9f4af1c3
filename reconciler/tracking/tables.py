"""The tracking database's tables, as sqlmodel models.

The schema is what makes the reconciler idempotent: every "do this once" rule is a unique
constraint here (one run per (operation, cause), one schedule tick per (operation, tick time),
one consumption per (subscription, transition), one webhook per delivery id), so a crash and a
retry can never do a thing twice. Commit statuses are ordered rather than unique: each state
change adds its row in the transaction that made it, and only the newest one of a
(repo, sha, context) is posted.

The tables a read of runs, operations and schedules needs are declared in `tables_runs` and
imported here, so this module is still where every table is (importing it declares them all).
Migrations under `migrations/versions/` create exactly these tables; a test compares the two.
Timestamps are timezone-aware UTC (`UTCDateTime`); enums are stored as text (`EnumText`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from reconciler.statuses import CommitState
from reconciler.tracking.coltypes import EnumText
from reconciler.tracking.tables_runs import (
    GitCommit,
    Operation,
    OrchestratedRun,
    Repo,
    Run,
    ScheduleState,
    ScheduleTick,
    StatusChange,
    _required_utc,
    _utc,
)


class Subscription(SQLModel, table=True):
    """Operation `operation_id` starts a run when a run of `source_operation_id` enters `kinds`."""

    __tablename__ = "subscription"
    __table_args__ = (UniqueConstraint("operation_id", "source_operation_id", name="uq_subscription_op_source"),)

    id: int | None = Field(default=None, primary_key=True)
    operation_id: int = Field(sa_column=Column(Integer, ForeignKey("operation.id", ondelete="CASCADE"), nullable=False))
    source_operation_id: int = Field(
        sa_column=Column(Integer, ForeignKey("operation.id", ondelete="CASCADE"), nullable=False)
    )
    kinds: list[str] = Field(default_factory=list, sa_type=JSON, nullable=False)
    # Transitions before this moment never fire the subscription (no replay of old history).
    created_at: dt.datetime = _required_utc()
    updated_at: dt.datetime = _required_utc()


class ConsumedTransition(SQLModel, table=True):
    __tablename__ = "consumed_transition"
    __table_args__ = (
        UniqueConstraint("subscription_id", "status_change_id", name="uq_consumed_transition_sub_change"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(
        sa_column=Column(Integer, ForeignKey("subscription.id", ondelete="CASCADE"), nullable=False)
    )
    status_change_id: int = Field(
        sa_column=Column(Integer, ForeignKey("status_change.id", ondelete="CASCADE"), nullable=False)
    )
    consumed_at: dt.datetime = _required_utc()
    run_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("run.id"), nullable=True))


class Subscriber(SQLModel, table=True):
    """An operation with `events`: its compiled spec, so a transition builds its run without Git."""

    __tablename__ = "subscriber"

    operation_id: int = Field(
        sa_column=Column(Integer, ForeignKey("operation.id", ondelete="CASCADE"), primary_key=True)
    )
    spec_hash: str = Field(max_length=64)
    commit_sha: str | None = Field(default=None, max_length=64)
    kind: str = Field(max_length=32)
    events: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON, nullable=False)
    spec: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    registered_at: dt.datetime = _required_utc()
    updated_at: dt.datetime = _required_utc()
    # Added in revision 0005: where its runs go, as the repo config said at registration.
    namespace: str | None = Field(default=None, max_length=253)


# APScheduler 3's job table, declared here so migrations create it (the job store then finds it and
# creates nothing) and the schema check covers it. Column types are exactly APScheduler's.
APSCHEDULER_JOBS = Table(
    "apscheduler_jobs",
    SQLModel.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_delivery"
    __table_args__ = (PrimaryKeyConstraint("provider", "delivery_id", name="pk_webhook_delivery"),)

    provider: str = Field(max_length=16)
    delivery_id: str = Field(max_length=255)
    received_at: dt.datetime = _required_utc()


class OutboxEntry(SQLModel, table=True):
    """A commit status to post; a row leaves the queue when posted or superseded by a newer state.

    One row per reported state change, in order (`id`): the poster only ever posts the newest row
    of a (repo, sha, context), so success -> failure -> success ends on success.
    """

    __tablename__ = "commit_status_outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            "id",
            postgresql_where=text("posted_at IS NULL AND superseded_at IS NULL"),
            sqlite_where=text("posted_at IS NULL AND superseded_at IS NULL"),
        ),
        Index("ix_outbox_repo_sha_context", "repo", "sha", "context"),
    )

    id: int | None = Field(default=None, primary_key=True)
    repo: str = Field(max_length=255)
    sha: str = Field(max_length=64)
    context: str = Field(max_length=255)
    state: CommitState = Field(sa_type=EnumText(CommitState), nullable=False)
    description: str | None = Field(default=None, sa_type=Text)
    target_url: str | None = Field(default=None, sa_type=Text)
    attempts: int = Field(default=0)
    next_attempt_at: dt.datetime = _required_utc()
    posted_at: dt.datetime | None = _utc()
    created_at: dt.datetime = _required_utc()
    # Added in revision 0002: a claim is a lease, so a poster that dies frees its rows.
    claimed_until: dt.datetime | None = _utc()
    superseded_at: dt.datetime | None = _utc()
    last_error: str | None = Field(default=None, sa_type=Text)


class Instance(SQLModel, table=True):
    """The identity of the daemon that owns this database (one row, created on first start).

    It is written into every local run's directory and every Kubernetes object's labels, so a
    daemon adopts, stops or prunes only what it started, even beside another daemon.
    """

    __tablename__ = "reconciler_instance"

    key: str = Field(default="instance", primary_key=True, max_length=16)  # one row: "instance"
    id: str = Field(max_length=36)
    created_at: dt.datetime = _required_utc()
    # Added in revision 0006: the key run tokens (POLYAXON_RUN_TOKEN) are derived from, made on
    # first use; shared by replicas of one database, so any of them accepts a run's reports.
    run_token_key: str | None = Field(default=None, max_length=64)


class RunMetric(SQLModel, table=True):
    """One value a run reported for a metric while it ran (or at its end), in arrival order."""

    __tablename__ = "run_metric"
    __table_args__ = (Index("ix_run_metric_run_name", "run_id", "name", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(sa_column=Column(Integer, ForeignKey("run.id", ondelete="CASCADE"), nullable=False))
    name: str = Field(max_length=255)
    step: int | None = Field(default=None, sa_type=BigInteger)
    value: float
    at: dt.datetime = _required_utc()


class RunOutput(SQLModel, table=True):
    """The latest value a run reported for one of its outputs (a later report replaces it)."""

    __tablename__ = "run_output"

    run_id: int = Field(sa_column=Column(Integer, ForeignKey("run.id", ondelete="CASCADE"), primary_key=True))
    name: str = Field(max_length=255, primary_key=True)
    value: Any = Field(default=None, sa_type=JSON, nullable=True)
    updated_at: dt.datetime = _required_utc()


class ShardMember(SQLModel, table=True):
    """A replica sharing this database's repos (`sharding.mode: database`), live until `expires_at`.

    `holder` is the identity plus a token of the process: a restarted process is a new holder, so
    the repo leases of the process it replaces are free, never silently inherited. Expiry is
    judged by the database's clock, the one clock every replica shares.
    """

    __tablename__ = "shard_member"

    identity: str = Field(primary_key=True, max_length=128)
    holder: str = Field(max_length=200)
    joined_at: dt.datetime = _required_utc()
    renewed_at: dt.datetime = _required_utc()
    expires_at: dt.datetime = _required_utc()


class RepoLease(SQLModel, table=True):
    """Which replica owns a repo (`sharding.mode: database`).

    A lease is held while its holder's `shard_member` row is live (renewing the membership renews
    every lease of the replica at once). `generation` grows at every acquisition: the fencing
    token a holder shows on every write that starts something.
    """

    __tablename__ = "repo_lease"

    repo: str = Field(primary_key=True, max_length=255)
    holder: str | None = Field(default=None, max_length=200)
    generation: int = Field(default=0, sa_type=BigInteger, nullable=False)
    acquired_at: dt.datetime | None = _utc()
    released_at: dt.datetime | None = _utc()


class Handoff(SQLModel, table=True):
    """A verified webhook event (push, pull request) or API request for a repo another replica
    owns: the owner takes the row (and is woken by `NOTIFY`), the row goes with the taking."""

    __tablename__ = "handoff"
    __table_args__ = (Index("ix_handoff_repo", "repo", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    repo: str = Field(max_length=255)
    kind: str = Field(max_length=32)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    sender: str = Field(max_length=128)
    created_at: dt.datetime = _required_utc()


ALL_TABLES = (
    Repo,
    GitCommit,
    Operation,
    Run,
    StatusChange,
    ScheduleState,
    ScheduleTick,
    Subscription,
    ConsumedTransition,
    WebhookDelivery,
    OutboxEntry,
    Subscriber,
    OrchestratedRun,
    Instance,
    RunMetric,
    RunOutput,
    ShardMember,
    RepoLease,
    Handoff,
)

__all__ = [
    "ALL_TABLES",
    "APSCHEDULER_JOBS",
    "ConsumedTransition",
    "GitCommit",
    "Handoff",
    "Instance",
    "Operation",
    "OrchestratedRun",
    "OutboxEntry",
    "Repo",
    "RepoLease",
    "Run",
    "RunMetric",
    "RunOutput",
    "ScheduleState",
    "ScheduleTick",
    "ShardMember",
    "StatusChange",
    "Subscriber",
    "Subscription",
    "WebhookDelivery",
]
