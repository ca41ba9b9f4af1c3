"""Orchestration state: what schedules and subscriptions run, tick outcomes, DAG and matrix children.

A tick or an event must build its run from the database alone (Git may have moved on, the daemon
may have restarted), so schedules and subscribers keep their compiled spec. Ticks that were
skipped or missed are recorded beside fired ones, so nothing is dropped silently. DAG ops and
matrix trials keep their node name, trial index, params and outputs, so progress is a function of
rows. APScheduler's job table is created here rather than by APScheduler, so the schema has one
owner.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _utc(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("schedule_state") as batch:
        batch.add_column(sa.Column("spec_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("commit_sha", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("kind", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("schedule", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("spec", sa.JSON(), nullable=True))
        batch.add_column(_utc("registered_at"))
    with op.batch_alter_table("schedule_tick") as batch:
        batch.add_column(sa.Column("outcome", sa.String(length=16), nullable=False, server_default="fired"))
        batch.add_column(sa.Column("reason", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("message", sa.Text(), nullable=True))
        batch.add_column(_utc("missed_until"))
        batch.add_column(sa.Column("missed_count", sa.Integer(), nullable=True))
    op.create_table(
        "subscriber",
        sa.Column("operation_id", sa.Integer(), sa.ForeignKey("operation.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("commit_sha", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        _utc("registered_at", nullable=False),
        _utc("updated_at", nullable=False),
    )
    op.create_table(
        "orchestrated_run",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("run.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("container", sa.String(length=16), nullable=True),
        sa.Column("node", sa.String(length=255), nullable=True),
        sa.Column("trial_index", sa.Integer(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=True),
        _utc("created_at", nullable=False),
    )
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), primary_key=True),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_index("ix_apscheduler_jobs_next_run_time", table_name="apscheduler_jobs")
    op.drop_table("apscheduler_jobs")
    op.drop_table("orchestrated_run")
    op.drop_table("subscriber")
    with op.batch_alter_table("schedule_tick") as batch:
        for column in ("missed_count", "missed_until", "message", "reason", "outcome"):
            batch.drop_column(column)
    with op.batch_alter_table("schedule_state") as batch:
        for column in ("registered_at", "spec", "schedule", "kind", "commit_sha", "spec_hash"):
            batch.drop_column(column)
