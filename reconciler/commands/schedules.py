"""`reconciler schedules list`: registered schedules with their next ticks, from the tracking DB."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from reconciler.commands.daemon import ConfigOption, settings_or_exit
from reconciler.commands.runs import FormatOption, _check_format, _store, emit_rows

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


def next_ticks(state: Any, tz: str, now: datetime, n: int) -> list[str]:
    from pydantic import TypeAdapter

    from reconciler.scheduling.ticks import ScheduleError, anchored, from_spec
    from reconciler.scheduling.ticks import next_ticks as ticks_after
    from reconciler.spec.schedules import Schedule

    if state.schedule is None:
        return []
    try:
        spec = from_spec(TypeAdapter(Schedule).validate_python(state.schedule), tz)
    except (ValueError, ScheduleError):
        return []
    if spec.kind == "interval" and spec.start_at is None:
        spec = anchored(spec, state.registered_at or now)
    after = max(now, state.last_tick_at) if state.last_tick_at else now
    ticks = ticks_after(spec, after, n)
    if spec.max_runs is not None:
        ticks = ticks[: max(0, spec.max_runs - state.run_count)]
    return [t.astimezone(spec.tz).isoformat() for t in ticks]


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
        rows = []
        for op_key, state in store.schedules(repo):
            tz = zones.get(op_key.split(":", 1)[0], "UTC")
            rows.append(
                {
                    "op": op_key,
                    "kind": (state.schedule or {}).get("kind"),
                    "schedule": state.schedule,
                    "timezone": tz,
                    "next_ticks": next_ticks(state, tz, now, ticks),
                    "runs": state.run_count,
                    "last_tick": state.last_tick_at.isoformat() if state.last_tick_at else None,
                }
            )
    finally:
        store.close()
    if emit_rows(rows, output_format, "no schedules"):
        return
    for r in rows:
        detail = r["schedule"].get("cron") or r["schedule"].get("frequency") or r["schedule"].get("startAt") or ""
        typer.echo(f"{r['op']}  {r['kind']} {detail}  runs={r['runs']}  ({r['timezone']})")
        for tick in r["next_ticks"]:
            typer.echo(f"    next: {tick}")
