"""Runs remember their run kind and the compiled spec they were created with.

The planner diffs a long-running run's spec against Git's (`~ update` with a field diff) and
needs the kind to pick prune policies; the local backend and `reconciler runs show` need the
spec after a restart without recompiling an old commit.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("spec", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("parent", sa.String(length=253), nullable=True))
    op.create_index("ix_run_parent", "run", ["parent"])


def downgrade() -> None:
    op.drop_index("ix_run_parent", table_name="run")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("parent")
        batch.drop_column("spec")
        batch.drop_column("kind")
