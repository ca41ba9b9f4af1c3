"""The `reconciler` command line. Commands stay thin: the work lives in importable functions."""

from __future__ import annotations

import typer

from reconciler import __version__
from reconciler.commands.db import app as db_app
from reconciler.commands.validate import validate

app = typer.Typer(help="GitOps reconciler for Polyaxon polyaxonfiles.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


app.command()(validate)


def main() -> None:
    app()
