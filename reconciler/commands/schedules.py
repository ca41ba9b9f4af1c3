"""`reconciler schedules list`: registered schedules with their next ticks, from the tracking DB."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from reconciler.commands.runs import FormatOption, _check_format, _store, emit_rows
from reconciler.commands.settings import ConfigOption, settings_or_exit
from reconciler.views import schedule_row

schedules_app = typer.Typer(help="Schedules registered from the repos.", no_args_is_help=True)


def _timezones(settings: Any, store: Any) -> dict[str, str]:
    """Each repo's `timezone` from its config at the applied commit (in the daemon's git cache)."""
    from reconciler.source import GitSource

    zones: dict[str, str] = {}
    for repo in settings.repos:
        last = store.last_commit(repo.name)
        cache = Path(settings.data_dir) / "git"
        if last is None or not (cache / f"{repo.name}.git").exists():
            continue
        source = GitSource(repo.name, repo.url, repo.branch, cache)
        try:
            config = source.repo_config(last.sha)
        except Exception:
            continue
        finally:
            source.close()
        if not isinstance(config, list):
            zones[repo.name] = config.timezone
    return zones


@schedules_app.command("list")
def list_schedules(
    config: ConfigOption = None,
    output_format: FormatOption = "text",
    repo: Annotated[str | None, typer.Option(help="Only this repo's schedules.")] = None,
    ticks: Annotated[int, typer.Option(help="How many next ticks to show.")] = 3,
) -> None:
    """Schedules with their next ticks. JSON: an array of {op, kind, next_ticks, runs, ...}."""
    _check_format(output_format)
    settings = settings_or_exit(config)
    store = _store(settings)
    now = datetime.now(UTC)
    try:
        zones = _timezones(settings, store)
        rows = [
            schedule_row(op_key, state, zones.get(op_key.split(":", 1)[0], "UTC"), now, ticks)
            for op_key, state in store.schedules(repo)
        ]
    finally:
        store.close()
    if emit_rows(rows, output_format, "no schedules"):
        return
    for r in rows:
        detail = r["schedule"].get("cron") or r["schedule"].get("frequency") or r["schedule"].get("startAt") or ""
        typer.echo(f"{r['op']}  {r['kind']} {detail}  runs={r['runs']}  ({r['timezone']})")
        for tick in r["next_ticks"]:
            typer.echo(f"    next: {tick}")
