"""Alembic environment, configured by `reconciler.tracking.migrate` rather than an alembic.ini.

The caller hands over an open connection (in `config.attributes`), so the engine settings
(SQLite pragmas, psycopg driver) are the daemon's own and nothing is read from disk but the
revision scripts.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from reconciler.tracking import tables  # noqa: F401  (registers the tables on the metadata)
from reconciler.tracking.migrate import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run tracking migrations through reconciler.tracking.migrate (it passes a connection)")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
