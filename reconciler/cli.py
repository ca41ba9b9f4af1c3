"""The `reconciler` command line. Commands stay thin: the work lives in importable functions.

Each command lives in its own module under `reconciler.commands` and is imported only when it
runs: `reconciler --help` imports none of them, and `reconciler validate` pays for the spec models
but never for the Kubernetes client, the database layer or git (a test holds each command to the
heavy modules it may import). The list below is the one place that names them; the help shown in
`reconciler --help` is written here too, so listing commands needs no import (a test keeps each
line equal to its command's own docstring).
"""

from __future__ import annotations

import gc
import importlib
import sys
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperGroup

from reconciler import __version__


@dataclass(frozen=True)
class Lazy:
    module: str
    attribute: str  # a command function, or a Typer app of sub-commands
    help: str  # the first line of its docstring (or the app's help)
    # False: the command reads, prints and ends (or streams a log), creating no garbage worth a
    # collection; the process runs it with the cyclic collector off (see `main`).
    collect: bool = True


COMMANDS: dict[str, Lazy] = {
    "validate": Lazy(
        "reconciler.commands.validate",
        "validate",
        "Validate polyaxonfiles: `path:line:col: message` per error, exit 1 if any file is invalid.",
    ),
    "run": Lazy(
        "reconciler.commands.daemon",
        "run",
        "Run the daemon: poll (and receive webhooks for) each repo, apply changes, until SIGTERM.",
    ),
    "sync": Lazy(
        "reconciler.commands.daemon",
        "sync",
        "Reconcile each configured repo once and exit: 0 converged, 1 invalid files or failed actions.",
    ),
    "render": Lazy(
        "reconciler.commands.render",
        "render",
        "Print the Kubernetes manifests of polyaxonfiles as multi-document YAML.",
    ),
    "plan": Lazy(
        "reconciler.commands.plan",
        "plan",
        "Print what a sync would do: + create, ~ update, - delete, ! invalid, schedules; exit 1 if files are invalid.",
    ),
    "db": Lazy("reconciler.commands.db", "app", "Tracking database: migrations and schema revision."),
    "runs": Lazy(
        "reconciler.commands.runs",
        "runs_app",
        "Runs the reconciler started, from the tracking database.",
        collect=False,
    ),
    "ops": Lazy("reconciler.commands.runs", "ops_app", "Operations compiled from the repos.", collect=False),
    "schedules": Lazy(
        "reconciler.commands.schedules", "schedules_app", "Schedules registered from the repos.", collect=False
    ),
}


def load(name: str) -> Any:
    """The click command of `name`, importing its module now."""
    entry = COMMANDS[name]
    target = getattr(importlib.import_module(entry.module), entry.attribute)
    if isinstance(target, typer.Typer):
        return typer.main.get_group(target)
    single = typer.Typer()
    single.command(name)(target)
    return typer.main.get_command(single)


class LazyGroup(TyperGroup):
    """A group whose commands are imported when they run, not when the program starts."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            # Listing commands in the help only needs their names and one line each.
            return typer.core.TyperCommand(cmd_name, help=COMMANDS[cmd_name].help)
        return load(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup,
    help="GitOps reconciler for Polyaxon polyaxonfiles.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: importing rich costs more than printing a list
)


@app.callback()
def _root() -> None:
    """GitOps reconciler for Polyaxon polyaxonfiles."""


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """The program: one command, then the process ends.

    Garbage collection is set for that here, where the process starts, never in `app` (tests run
    it inside their own process). Whatever the command, the interpreter's last act would be a
    collection that walks every object the imports made (several hundred thousand: modules,
    classes, pydantic and SQLAlchemy structures), only to find that nothing is cyclic garbage
    worth freeing before the process is gone; `gc.freeze()` takes them out of its reach. Atexit
    handlers still run and reference counting still frees what modules drop. The commands that
    only read and print (or stream a log) also run with the collector off: while their imports
    grow the heap, it walks everything each time the heap has grown by a quarter, and frees
    nothing. For `runs list` the two are about 0.1 s and 0.03 s of 0.48 s (bench/cli_bench.py).
    """
    entry = COMMANDS.get(sys.argv[1]) if len(sys.argv) > 1 else None
    if entry is not None and not entry.collect:
        gc.disable()
    try:
        app()
    finally:
        gc.freeze()
