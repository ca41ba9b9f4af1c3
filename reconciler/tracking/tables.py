"""The tracking database's tables, as sqlmodel models.

The schema is what makes the reconciler idempotent: every "do this once" rule is a unique
constraint here (one run per (operation, cause), one schedule tick per (operation, tick time),
one consumption per (subscription, transition), one webhook per delivery id), so a crash and a
retry can never do a thing twice. Commit statuses are ordered rather than unique: each state
change adds its row in the transaction that made it, and only the newest one of a
(repo, sha, context) is posted.

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

from reconciler.model import Cause
from reconciler.statuses import CommitState, Status
from reconciler.tracking.coltypes import EnumText, UTCDateTime


def _utc(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime(), nullable=nullable, index=index)


def _required_utc() -> Any:
    return Field(sa_type=UTCDateTime(), nullable=False)


class Repo(SQLModel, table=True):
    __tablename__ = "repo"
    __table_args__ = (UniqueConstraint("name", name="uq_repo_name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=255)
    url: str = Field(sa_type=Text)
    branch: str = Field(max_length=255)
    created_at: dt.datetime = _required_utc()


class GitCommit(SQLModel, table=True):
    """A commit seen on a tracked branch and whether its polyaxonfiles were valid there."""

    __tablename__ = "git_commit"
    __table_args__ = (
        UniqueConstraint("repo_id", "sha", name="uq_git_commit_repo_sha"),
        Index("ix_git_commit_repo_time", "repo_id", "committed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    repo_id: int = Field(sa_column=Column(Integer, ForeignKey("repo.id"), nullable=False))
    sha: str = Field(max_length=64)
    branch: str = Field(max_length=255)
    committed_at: dt.datetime = _required_utc()
    recorded_at: dt.datetime = _required_utc()
    # None until validated; errors are [{"file", "line", "message"}] located in the repo.
    valid: bool | None = Field(default=None)
    errors: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON, nullable=False)
    # Added in revision 0006: what the reconcile that applied this commit decided, one
    # {"action", "op", "run", "reason"} per operation (noops included); None before 0006.
    plan: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON)


class Operation(SQLModel, table=True):
    """One OpKey's tracked state: the last spec that compiled, and since when it is broken."""

    __tablename__ = "operation"
    __table_args__ = (
        UniqueConstraint("op_key", name="uq_operation_op_key"),
        Index("ix_operation_repo", "repo_id"),  # added in revision 0005: a repo's operations
    )

    id: int | None = Field(default=None, primary_key=True)
    op_key: str = Field(max_length=512)
    repo_id: int = Field(sa_column=Column(Integer, ForeignKey("repo.id"), nullable=False))
    mode: str = Field(max_length=32)
    last_good_spec_hash: str | None = Field(default=None, max_length=64)
    last_good_commit_sha: str | None = Field(default=None, max_length=64)
    invalid_since: dt.datetime | None = _utc()
    invalid_commit_sha: str | None = Field(default=None, max_length=64)
    updated_at: dt.datetime = _required_utc()
    # Added in revision 0005: set when the operation left Git (its file or name went away),
    # cleared when it comes back. Its runs and history stay.
    removed_at: dt.datetime | None = _utc()


class Run(SQLModel, table=True):
    __tablename__ = "run"
    __table_args__ = (
        UniqueConstraint("operation_id", "cause", "cause_id", name="uq_run_op_cause"),
        UniqueConstraint("name", name="uq_run_name"),
        UniqueConstraint("uuid", name="uq_run_uuid"),
        Index("ix_run_op_created", "operation_id", "created_at", "id"),
        Index("ix_run_commit_sha", "commit_sha"),
        Index("ix_run_status", "status"),
        Index("ix_run_parent", "parent"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=253)
    uuid: str = Field(max_length=36)
    operation_id: int = Field(sa_column=Column(Integer, ForeignKey("operation.id"), nullable=False))
    # Why the run exists (reconciler.model.Cause, stored as is) and, within its operation, which
    # occurrence of that cause: commit sha, tick time, `<sub>:<transition>`, `dag:<parent>:<op>`,
    # `matrix:<parent>:<i>`, `hook:<run>:<i>:<status>`, `retry:<run>:<n>`, `pr-<n>@<sha>`.
    cause: Cause = Field(sa_type=EnumText(Cause), nullable=False)
    cause_id: str = Field(max_length=255)
    commit_sha: str | None = Field(default=None, max_length=64)
    spec_hash: str = Field(max_length=64)
    backend: str = Field(max_length=32)
    backend_ref: str | None = Field(default=None, sa_type=Text)
    status: Status = Field(sa_type=EnumText(Status), nullable=False)
    created_at: dt.datetime = _required_utc()
    started_at: dt.datetime | None = _utc()
    finished_at: dt.datetime | None = _utc()
    updated_at: dt.datetime = _required_utc()
    # Run kind (job, service, dag, ...), the compiled spec it was created with, and for DAG ops
    # and matrix trials the run they belong to.
    kind: str | None = Field(default=None, max_length=32)
    spec: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    parent: str | None = Field(default=None, max_length=253)


class StatusChange(SQLModel, table=True):
    """One row per status a run entered, numbered per run so history order is exact."""

    __tablename__ = "status_change"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_status_change_run_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(sa_column=Column(Integer, ForeignKey("run.id", ondelete="CASCADE"), nullable=False))
    seq: int
    status: Status = Field(sa_type=EnumText(Status), nullable=False)
    previous: Status | None = Field(default=None, sa_type=EnumText(Status))
    reason: str | None = Field(default=None, max_length=255)
    message: str | None = Field(default=None, sa_type=Text)
    at: dt.datetime = _required_utc()


class ScheduleState(SQLModel, table=True):
    __tablename__ = "schedule_state"
    __table_args__ = (Index("ix_schedule_state_next_tick", "next_tick_at"),)

    operation_id: int = Field(
        sa_column=Column(Integer, ForeignKey("operation.id", ondelete="CASCADE"), primary_key=True)
    )
    next_tick_at: dt.datetime | None = _utc()
    last_tick_at: dt.datetime | None = _utc()
    run_count: int = Field(default=0)
    updated_at: dt.datetime = _required_utc()
    # Added in revision 0004: what the schedule runs, so a tick builds its run without Git.
    spec_hash: str | None = Field(default=None, max_length=64)
    commit_sha: str | None = Field(default=None, max_length=64)
    kind: str | None = Field(default=None, max_length=32)
    schedule: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    spec: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    # When this schedule (as it is now) was registered: no tick before it fires.
    registered_at: dt.datetime | None = _utc()
    # Added in revision 0005: what the repo config said when the schedule was registered, so a
    # tick after a restart (before the repo config is read again) runs in the right zone and place.
    tz: str | None = Field(default=None, max_length=64)
    namespace: str | None = Field(default=None, max_length=253)
    starting_deadline_seconds: float | None = Field(default=None)
    concurrency: str | None = Field(default=None, max_length=16)


class ScheduleTick(SQLModel, table=True):
    """A tick that fired; its uniqueness is what prevents a double fire after a restart."""

    __tablename__ = "schedule_tick"
    __table_args__ = (UniqueConstraint("operation_id", "tick_at", name="uq_schedule_tick_op_time"),)

    id: int | None = Field(default=None, primary_key=True)
    operation_id: int = Field(sa_column=Column(Integer, ForeignKey("operation.id", ondelete="CASCADE"), nullable=False))
    tick_at: dt.datetime = _required_utc()
    claimed_at: dt.datetime = _required_utc()
    run_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("run.id"), nullable=True))
    # Added in revision 0004: a tick is fired, skipped (concurrency, dependsOnPast) or missed; a
    # missed row stands for `missed_count` ticks from `tick_at` to `missed_until`.
    outcome: str = Field(default="fired", max_length=16, sa_column_kwargs={"server_default": "fired"})
    reason: str | None = Field(default=None, max_length=255)
    message: str | None = Field(default=None, sa_type=Text)
    missed_until: dt.datetime | None = _utc()
    missed_count: int | None = Field(default=None)


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


class OrchestratedRun(SQLModel, table=True):
    """What the orchestration adapter knows of a run it created or expanded.

    The parent link is `run.parent` and why it exists is `run.cause`; this row adds whether it is a
    DAG or matrix expanded into children (`container`), a DAG op's name or a trial's index, the
    params it was given, and the outputs read once it finished, so DAG and matrix progress is a
    function of rows and survives restarts.
    """

    __tablename__ = "orchestrated_run"

    run_id: int = Field(sa_column=Column(Integer, ForeignKey("run.id", ondelete="CASCADE"), primary_key=True))
    container: str | None = Field(default=None, max_length=16)  # dag | matrix once expanded
    node: str | None = Field(default=None, max_length=255)
    trial_index: int | None = Field(default=None)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    meta: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    # Added as BigInteger in revision 0005: a matrix `seed` written in a spec may need 64 bits.
    seed: int | None = Field(default=None, sa_type=BigInteger)
    namespace: str = Field(default="default", max_length=253)
    outputs: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: dt.datetime = _required_utc()


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
