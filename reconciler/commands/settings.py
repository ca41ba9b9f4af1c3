"""The `--config` option and loading the settings it names, shared by every command that reads them.

Kept apart from `commands.daemon` so that a command which only reads the tracking database
(`runs list`) does not import the daemon's wiring to parse one option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reconciler.config import Settings, SettingsError, load_settings

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="Settings file (YAML).", dir_okay=False)]

EXIT_USAGE = 2


def settings_or_exit(config: Path | None) -> Settings:
    if config is not None and not config.exists():
        typer.echo(f"error: {config}: no such file", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        return load_settings(config)
    except SettingsError as e:  # each line names its file, line, column and what is wrong
        for error in e.errors:
            typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except OSError as e:
        typer.echo(f"error: {config}: {e.strerror or e}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
