"""Schema migrations: upgrade, report the revision, refuse to run on a stale schema.

The daemon never migrates a database it did not just create: an operator upgrades explicitly
with `reconciler db upgrade --config FILE`, so a new release can't rewrite a shared PostgreSQL
schema behind anyone's back. The one exception is a brand-new embedded SQLite file, which is
created and migrated on first start so `make run` needs no extra step.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from reconciler.tracking.engine import create_engine_for, safe_url, sqlite_path
from reconciler.tracking.errors import DatabaseNotReady

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "tracking_schema_version"
UPGRADE_COMMAND = "reconciler db upgrade --config FILE"
# Any constant will do; it serialises concurrent `db upgrade` runs on one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x7265636F6E63


VERSIONS = Path(__file__).with_name("migrations") / "versions"


def _config(connection: Connection | None = None) -> Config:
    # alembic is imported where it migrates: a command that only reads (`runs list`) checks the
    # schema revision with one SELECT and skips its import.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "reconciler.tracking:migrations")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return known_revisions()[-1]


@cache
def known_revisions() -> tuple[str, ...]:
    """Every revision shipped with this release, oldest first: a migration's file is named after
    its revision and its revision follows the one before (test_migrations holds alembic to it)."""
    revisions = tuple(sorted(p.name.split("_", 1)[0] for p in VERSIONS.glob("[0-9]*_*.py")))
    assert revisions, "the migrations package has no revision"
    return revisions


def upgrade(url: str, revision: str = "head") -> str | None:
    """Migrate the database at `url` to `revision`; returns the revision it is at afterwards."""
    engine = create_engine_for(url, sqlite_foreign_keys=False)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            from alembic import command

            command.upgrade(_config(connection), revision)
            if connection.dialect.name == "sqlite":
                # Foreign keys were off while tables were rebuilt: prove nothing dangles now.
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows pointing at nothing: {broken[:5]}")
        with engine.connect() as connection:
            return _current(connection)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The schema revision of the database at `url`, None when it was never migrated."""
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return _current(connection)
    finally:
        engine.dispose()


def _current(connection: Connection) -> str | None:
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:  # our chain is linear: two heads mean someone else's migrations
        raise DatabaseNotReady(f"the schema version table holds {len(rows)} revisions: {rows}", None, head_revision())
    return rows[0] if rows else None


def check_ready(url: str) -> None:
    """Raise `DatabaseNotReady` unless the database at `url` is at this release's head revision."""
    head = head_revision()
    path = sqlite_path(url)
    if path is not None and not path.exists():
        # Asking must not create it: an empty file would then look like a foreign database.
        raise DatabaseNotReady(
            f"no tracking database at {path} yet: the daemon creates it on its first start "
            f"(or run `{UPGRADE_COMMAND}`)",
            None,
            head,
        )
    current = current_revision(url)
    if current == head:
        return
    where = safe_url(url)
    if current is None:
        message = f"the tracking database {where} has no schema yet; run `{UPGRADE_COMMAND}` to create it"
    elif current in known_revisions():
        message = (
            f"the tracking database {where} is at schema revision {current}, this reconciler needs "
            f"{head}; run `{UPGRADE_COMMAND}` to migrate it"
        )
    else:
        message = (
            f"the tracking database {where} is at schema revision {current}, which this reconciler "
            f"does not know (its newest is {head}): it was migrated by a newer release; upgrade the "
            f"reconciler instead"
        )
    raise DatabaseNotReady(message, current, head)


def ensure_ready(url: str) -> None:
    """Startup check for `run` and `sync`: create a brand-new SQLite file, refuse anything stale.

    Only a SQLite file that does not exist yet (or is empty) is migrated here; an existing
    database, and any PostgreSQL one, must be upgraded with `reconciler db upgrade`.
    """
    path = sqlite_path(url)
    if path is not None and (not path.exists() or path.stat().st_size == 0):
        upgrade(url)
        return
    check_ready(url)
