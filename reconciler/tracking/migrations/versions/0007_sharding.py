"""Replicas that share repos (`sharding`): members, repo leases and hand-offs.

- `shard_member`: each replica of `sharding.mode: database`, live while renewed (database clock).
- `repo_lease`: the replica that owns each repo, and the generation (fencing token) of its lease.
- `handoff`: a webhook event or API request for a repo another replica owns, for that owner.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _utc(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "shard_member",
        sa.Column("identity", sa.String(length=128), primary_key=True),
        sa.Column("holder", sa.String(length=200), nullable=False),
        _utc("joined_at", nullable=False),
        _utc("renewed_at", nullable=False),
        _utc("expires_at", nullable=False),
    )
    op.create_table(
        "repo_lease",
        sa.Column("repo", sa.String(length=255), primary_key=True),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        _utc("acquired_at"),
        _utc("released_at"),
    )
    op.create_table(
        "handoff",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("repo", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("sender", sa.String(length=128), nullable=False),
        _utc("created_at", nullable=False),
    )
    op.create_index("ix_handoff_repo", "handoff", ["repo", "id"])


def downgrade() -> None:
    op.drop_index("ix_handoff_repo", table_name="handoff")
    op.drop_table("handoff")
    op.drop_table("repo_lease")
    op.drop_table("shard_member")
