"""Schema migrations: upgrade, report the revision, refuse to run on a stale schema.

The daemon never migrates a database it did not just create: an operator upgrades explicitly
with `reconciler db upgrade --config FILE`, so a new release can't rewrite a shared PostgreSQL
schema behind anyone's back. The one exception is a brand-new embedded SQLite file, which is
created and migrated on first start so `make run` needs no extra step.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from reconciler.tracking.engine import create_engine_for, safe_url, sqlite_path
from reconciler.tracking.errors import DatabaseNotReady

VERSION_TABLE = "tracking_schema_version"
UPGRADE_COMMAND = "reconciler db upgrade --config FILE"
# Any constant will do; it serialises concurrent `db upgrade` runs on one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x7265636F6E63


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "reconciler.tracking:migrations")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations package has no revision"
    return head


def known_revisions() -> list[str]:
    """Every revision shipped with this release, oldest first."""
    script = ScriptDirectory.from_config(_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def upgrade(url: str, revision: str = "head") -> str | None:
    """Migrate the database at `url` to `revision`; returns the revision it is at afterwards."""
    engine = create_engine_for(url, sqlite_foreign_keys=False)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
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
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


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
