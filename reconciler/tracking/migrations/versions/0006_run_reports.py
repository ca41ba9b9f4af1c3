"""What runs report while they run, and what a commit's reconcile decided (the dashboard's data).

- `run_metric`: one row per value a run reported for a metric (POST /api/runs/{name}/metrics, or a
  line of its outputs file read while it runs), so early stopping acts on intermediate values and
  the run page plots them.
- `run_output`: the latest value of each output a run reported (POST .../outputs, the outputs file).
- `git_commit.plan`: the actions the reconcile that applied the commit decided.
- `reconciler_instance.run_token_key`: the key run tokens (`POLYAXON_RUN_TOKEN`) are derived from.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _utc(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "run_metric",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("run.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        _utc("at", nullable=False),
    )
    op.create_index("ix_run_metric_run_name", "run_metric", ["run_id", "name", "id"])
    op.create_table(
        "run_output",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("run.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(length=255), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=True),
        _utc("updated_at", nullable=False),
    )
    with op.batch_alter_table("git_commit") as batch:
        batch.add_column(sa.Column("plan", sa.JSON(), nullable=True))
    with op.batch_alter_table("reconciler_instance") as batch:
        batch.add_column(sa.Column("run_token_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reconciler_instance") as batch:
        batch.drop_column("run_token_key")
    with op.batch_alter_table("git_commit") as batch:
        batch.drop_column("plan")
    op.drop_table("run_output")
    op.drop_index("ix_run_metric_run_name", table_name="run_metric")
    op.drop_table("run_metric")
