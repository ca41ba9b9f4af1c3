"""Outbox claims become leases, and a newer state supersedes an unposted older one.

With only `posted_at`, a poster that claimed rows and died left them claimed forever, and two
pending states for one (sha, context) were both posted, possibly out of order. `claimed_until`
makes a claim expire; `superseded_at` retires a state a newer one replaced; the pending index
becomes partial so "what is left to post" stays cheap as posted rows pile up.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PENDING = "posted_at IS NULL AND superseded_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("commit_status_outbox") as batch:
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    op.drop_index("ix_outbox_due", table_name="commit_status_outbox")
    op.create_index(
        "ix_outbox_pending",
        "commit_status_outbox",
        ["next_attempt_at", "id"],
        postgresql_where=sa.text(_PENDING),
        sqlite_where=sa.text(_PENDING),
    )
    op.create_index("ix_outbox_sha_context", "commit_status_outbox", ["sha", "context"])


def downgrade() -> None:
    op.drop_index("ix_outbox_sha_context", table_name="commit_status_outbox")
    op.drop_index("ix_outbox_pending", table_name="commit_status_outbox")
    op.create_index("ix_outbox_due", "commit_status_outbox", ["posted_at", "next_attempt_at"])
    with op.batch_alter_table("commit_status_outbox") as batch:
        batch.drop_column("last_error")
        batch.drop_column("superseded_at")
        batch.drop_column("claimed_until")
