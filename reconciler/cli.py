"""The `reconciler` command line. Commands stay thin: the work lives in importable functions."""

from __future__ import annotations

import typer

from reconciler import __version__
from reconciler.commands.daemon import run, sync
from reconciler.commands.db import app as db_app
from reconciler.commands.plan import plan
from reconciler.commands.render import render
from reconciler.commands.runs import ops_app, runs_app
from reconciler.commands.schedules import schedules_app
from reconciler.commands.validate import validate

app = typer.Typer(help="GitOps reconciler for Polyaxon polyaxonfiles.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")
app.add_typer(ops_app, name="ops")
app.add_typer(schedules_app, name="schedules")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


app.command()(validate)
app.command()(run)
app.command()(sync)
app.command()(render)
app.command()(plan)


def main() -> None:
    app()
