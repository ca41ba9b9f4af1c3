"""Initial tracking schema: repos, commits, operations, runs, status history, schedules,
subscriptions, webhook deliveries and the commit-status outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _utc(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "repo",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("branch", sa.String(255), nullable=False),
        _utc("created_at"),
        sa.UniqueConstraint("name", name="uq_repo_name"),
    )
    op.create_table(
        "git_commit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("repo_id", sa.Integer(), sa.ForeignKey("repo.id"), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("branch", sa.String(255), nullable=False),
        _utc("committed_at"),
        _utc("recorded_at"),
        sa.Column("valid", sa.Boolean(), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.UniqueConstraint("repo_id", "sha", name="uq_git_commit_repo_sha"),
    )
    op.create_index("ix_git_commit_repo_time", "git_commit", ["repo_id", "committed_at"])
    op.create_table(
        "operation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("op_key", sa.String(512), nullable=False),
        sa.Column("repo_id", sa.Integer(), sa.ForeignKey("repo.id"), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("last_good_spec_hash", sa.String(64), nullable=True),
        sa.Column("last_good_commit_sha", sa.String(64), nullable=True),
        _utc("invalid_since", nullable=True),
        sa.Column("invalid_commit_sha", sa.String(64), nullable=True),
        _utc("updated_at"),
        sa.UniqueConstraint("op_key", name="uq_operation_op_key"),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("operation_id", sa.Integer(), sa.ForeignKey("operation.id"), nullable=False),
        sa.Column("cause_kind", sa.String(32), nullable=False),
        sa.Column("cause_id", sa.String(255), nullable=False),
        sa.Column("commit_sha", sa.String(64), nullable=True),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("backend_ref", sa.Text(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        _utc("created_at"),
        _utc("started_at", nullable=True),
        _utc("finished_at", nullable=True),
        _utc("updated_at"),
        sa.UniqueConstraint("operation_id", "cause_kind", "cause_id", name="uq_run_op_cause"),
        sa.UniqueConstraint("name", name="uq_run_name"),
        sa.UniqueConstraint("uuid", name="uq_run_uuid"),
    )
    op.create_index("ix_run_op_created", "run", ["operation_id", "created_at", "id"])
    op.create_index("ix_run_commit_sha", "run", ["commit_sha"])
    op.create_index("ix_run_status", "run", ["status"])
    op.create_table(
        "status_change",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("run.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("previous", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        _utc("at"),
        sa.UniqueConstraint("run_id", "seq", name="uq_status_change_run_seq"),
    )
    op.create_table(
        "schedule_state",
        sa.Column(
            "operation_id",
            sa.Integer(),
            sa.ForeignKey("operation.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        _utc("next_tick_at", nullable=True),
        _utc("last_tick_at", nullable=True),
        sa.Column("run_count", sa.Integer(), nullable=False),
        _utc("updated_at"),
    )
    op.create_index("ix_schedule_state_next_tick", "schedule_state", ["next_tick_at"])
    op.create_table(
        "schedule_tick",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "operation_id", sa.Integer(), sa.ForeignKey("operation.id", ondelete="CASCADE"), nullable=False
        ),
        _utc("tick_at"),
        _utc("claimed_at"),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("run.id"), nullable=True),
        sa.UniqueConstraint("operation_id", "tick_at", name="uq_schedule_tick_op_time"),
    )
    op.create_table(
        "subscription",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "operation_id", sa.Integer(), sa.ForeignKey("operation.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "source_operation_id",
            sa.Integer(),
            sa.ForeignKey("operation.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kinds", sa.JSON(), nullable=False),
        _utc("created_at"),
        _utc("updated_at"),
        sa.UniqueConstraint("operation_id", "source_operation_id", name="uq_subscription_op_source"),
    )
    op.create_table(
        "consumed_transition",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "subscription_id",
            sa.Integer(),
            sa.ForeignKey("subscription.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "status_change_id",
            sa.Integer(),
            sa.ForeignKey("status_change.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _utc("consumed_at"),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("run.id"), nullable=True),
        sa.UniqueConstraint("subscription_id", "status_change_id", name="uq_consumed_transition_sub_change"),
    )
    op.create_table(
        "webhook_delivery",
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("delivery_id", sa.String(255), nullable=False),
        _utc("received_at"),
        sa.PrimaryKeyConstraint("provider", "delivery_id", name="pk_webhook_delivery"),
    )
    op.create_table(
        "commit_status_outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("repo", sa.String(255), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("context", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("target_url", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _utc("next_attempt_at"),
        _utc("posted_at", nullable=True),
        _utc("created_at"),
        sa.UniqueConstraint("sha", "context", "state", name="uq_outbox_sha_context_state"),
    )
    op.create_index("ix_outbox_due", "commit_status_outbox", ["posted_at", "next_attempt_at"])


def downgrade() -> None:
    for table in (
        "commit_status_outbox",
        "webhook_delivery",
        "consumed_transition",
        "subscription",
        "schedule_tick",
        "schedule_state",
        "status_change",
        "run",
        "operation",
        "git_commit",
        "repo",
    ):
        op.drop_table(table)
