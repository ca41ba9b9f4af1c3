"""`reconciler db ...`: migrate the tracking database and show its schema revision.

Migrations are an explicit operator step (the daemon refuses a stale schema rather than
migrating a shared database on its own), so this is the command its error message names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Tracking database: migrations and schema revision.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Daemon settings file (its `database` is used).", dir_okay=False),
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL, instead of the one in --config (sqlite:///... or postgresql://...)."),
]


def _database_url(config: Path | None, db: str | None) -> str:
    if config is not None and db is not None:
        raise typer.BadParameter("give --config or --db, not both")
    if db is not None:
        return db
    from reconciler.commands.settings import settings_or_exit

    return settings_or_exit(config).database


@app.command()
def upgrade(config: ConfigOption = None, db: DbOption = None) -> None:
    """Migrate the tracking database to this release's schema (creating it if empty)."""
    from reconciler.tracking import head_revision, safe_url
    from reconciler.tracking import upgrade as do_upgrade

    url = _database_url(config, db)
    revision = do_upgrade(url)
    typer.echo(f"{safe_url(url)}: schema at revision {revision} (head {head_revision()})")


@app.command()
def current(config: ConfigOption = None, db: DbOption = None) -> None:
    """Print the schema revision of the tracking database; exit 1 when it is not at head."""
    from reconciler.tracking import current_revision, head_revision, safe_url

    url = _database_url(config, db)
    revision = current_revision(url)
    head = head_revision()
    typer.echo(f"{safe_url(url)}: schema at revision {revision or 'none'} (head {head})")
    if revision != head:
        raise typer.Exit(1)
