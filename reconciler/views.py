"""How tracked rows are shown: the JSON shapes the CLI (`--format json`) and the HTTP API share.

They are contracts users script against, so they live in one place, importable without the HTTP
server (the CLI must not pay for it).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rows are read by attribute: `runs list` never imports the table classes for this
    from reconciler.tracking import Run, ScheduleState


def run_row(run: Run, op_key: str) -> dict[str, Any]:
    """A run as `reconciler runs list --format json` and the API show it (the CLI contract)."""
    return {
        "name": run.name,
        "op": op_key,
        "kind": run.kind,
        "status": str(run.status),
        "cause": str(run.cause),
        "cause_id": run.cause_id,
        "commit": run.commit_sha,
        "parent": run.parent,
        "backend": run.backend,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def next_ticks(state: ScheduleState, tz: str, now: datetime, n: int) -> list[str]:
    """The schedule's next `n` ticks after `now` (ISO times in its zone; fewer near its end)."""
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


def schedule_row(op_key: str, state: ScheduleState, tz: str, now: datetime, ticks: int = 3) -> dict[str, Any]:
    """A schedule as `reconciler schedules list --format json` and the API show it (the CLI contract)."""
    return {
        "op": op_key,
        "kind": (state.schedule or {}).get("kind"),
        "schedule": state.schedule,
        "timezone": tz,
        "next_ticks": next_ticks(state, tz, now, ticks),
        "runs": state.run_count,
        "last_tick": state.last_tick_at.isoformat() if state.last_tick_at else None,
    }


__all__ = ["next_ticks", "run_row", "schedule_row"]
