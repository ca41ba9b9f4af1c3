"""One cause vocabulary, ordered commit statuses, removed operations, schedules that know their zone,
and the daemon's identity.

- `run.cause_kind` becomes `run.cause`, holding `reconciler.model.Cause` as is: runs that 0001-0004
  recorded as `upstream` get the finer cause `orchestrated_run.cause` kept for them (event, dag,
  matrix, hook, retry), or `event` where none was kept. `orchestrated_run.origin` and `.cause`
  repeated the same fact and go.
- The outbox's unique (sha, context, state) dropped a state that repeats (success -> failure ->
  success ended on failure); rows are now ordered by id and the newest of a (repo, sha, context)
  is the one posted.
- `operation.removed_at`: the operation left Git (`ops list` hides it; its runs stay); an index on
  `operation.repo_id` (a reconcile reads one repo's operations).
- `schedule_state.tz`, `.namespace`, `.starting_deadline_seconds`, `.concurrency` and `subscriber.namespace`: what
  the repo config said at registration, so a tick after a restart needs no repo config.
- `reconciler_instance`: the daemon's identity, written into what it starts (ownership).
- `orchestrated_run.seed` becomes a BigInteger: a matrix `seed` written in a spec may need 64 bits.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _utc(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _rename_cause(old: str, new: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        # PostgreSQL renames the column inside its constraint and indexes as they are.
        op.alter_column("run", old, new_column_name=new)
        return
    # SQLite rebuilds the table: the constraint is dropped and made again over the new name.
    with op.batch_alter_table("run") as batch:
        batch.drop_constraint("uq_run_op_cause", type_="unique")
        batch.alter_column(old, new_column_name=new, existing_type=sa.String(length=32), existing_nullable=False)
    with op.batch_alter_table("run") as batch:
        batch.create_unique_constraint("uq_run_op_cause", ["operation_id", new, "cause_id"])


def upgrade() -> None:
    _rename_cause("cause_kind", "cause")
    op.execute(
        "UPDATE run SET cause = (SELECT o.cause FROM orchestrated_run o WHERE o.run_id = run.id) "
        "WHERE cause = 'upstream' AND EXISTS (SELECT 1 FROM orchestrated_run o WHERE o.run_id = run.id "
        "AND o.cause IN ('event', 'dag', 'matrix', 'hook', 'retry', 'manual'))"
    )
    op.execute("UPDATE run SET cause = 'event' WHERE cause = 'upstream'")
    with op.batch_alter_table("orchestrated_run") as batch:
        batch.drop_column("origin")
        batch.drop_column("cause")
        batch.alter_column("seed", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=True)

    with op.batch_alter_table("commit_status_outbox") as batch:
        batch.drop_constraint("uq_outbox_sha_context_state", type_="unique")
    op.drop_index("ix_outbox_sha_context", table_name="commit_status_outbox")
    op.create_index("ix_outbox_repo_sha_context", "commit_status_outbox", ["repo", "sha", "context"])

    with op.batch_alter_table("operation") as batch:
        batch.add_column(_utc("removed_at"))
    op.create_index("ix_operation_repo", "operation", ["repo_id"])
    with op.batch_alter_table("schedule_state") as batch:
        batch.add_column(sa.Column("tz", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("namespace", sa.String(length=253), nullable=True))
        batch.add_column(sa.Column("starting_deadline_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("concurrency", sa.String(length=16), nullable=True))
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(sa.Column("namespace", sa.String(length=253), nullable=True))

    op.create_table(
        "reconciler_instance",
        sa.Column("key", sa.String(length=16), primary_key=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        _utc("created_at", nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reconciler_instance")
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("namespace")
    with op.batch_alter_table("schedule_state") as batch:
        batch.drop_column("concurrency")
        batch.drop_column("starting_deadline_seconds")
        batch.drop_column("namespace")
        batch.drop_column("tz")
    op.drop_index("ix_operation_repo", table_name="operation")
    with op.batch_alter_table("operation") as batch:
        batch.drop_column("removed_at")
    op.drop_index("ix_outbox_repo_sha_context", table_name="commit_status_outbox")
    op.create_index("ix_outbox_sha_context", "commit_status_outbox", ["sha", "context"])
    with op.batch_alter_table("commit_status_outbox") as batch:
        batch.create_unique_constraint("uq_outbox_sha_context_state", ["sha", "context", "state"])
    with op.batch_alter_table("orchestrated_run") as batch:
        batch.alter_column("seed", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=True)
        batch.add_column(sa.Column("origin", sa.String(length=16), nullable=False, server_default="start"))
        batch.add_column(sa.Column("cause", sa.String(length=16), nullable=False, server_default="commit"))
    op.execute("UPDATE orchestrated_run SET cause = (SELECT r.cause FROM run r WHERE r.id = orchestrated_run.run_id)")
    op.execute("UPDATE run SET cause = 'upstream' WHERE cause IN ('event', 'dag', 'matrix', 'hook', 'retry')")
    _rename_cause("cause", "cause_kind")
