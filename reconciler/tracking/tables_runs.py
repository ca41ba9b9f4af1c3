"""The tables a read of runs, operations and schedules needs (`Reader`), as sqlmodel models.

They are part of the schema described in `tables` (which imports them from here, so importing
`tables` still declares every table); they live apart so that `reconciler runs list` builds 8
model classes rather than 20, and never the commit-status outbox's, whose PostgreSQL partial
index loads SQLAlchemy's PostgreSQL dialect even on SQLite.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from reconciler.model import Cause
from reconciler.statuses import Status
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
