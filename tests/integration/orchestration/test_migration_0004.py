"""Revision 0004 (orchestration state) upgrades a 0003 database in place, keeping its ticks; the
production daemon never fires a schedule from a row that has no spec."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from reconciler.config import RepoConfig, Settings
from reconciler.tracking import Store, create_engine_for, head_revision, upgrade
from reconciler.wiring import build_daemon
from tests.infra.scripted_backend import ScriptedBackend
from tests.integration.tracking.test_migrations import schema_diff

T0 = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)


def test_upgrade_from_0003_keeps_schedules_and_fired_ticks(db_url: str, tmp_path: Path) -> None:
    assert upgrade(db_url, "0003") == "0003"
    engine = create_engine_for(db_url)
    t = T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO repo (name, url, branch, created_at) VALUES ('r', 'file:///r', 'main', :t)"),
                {"t": t},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO operation (op_key, repo_id, mode, updated_at)"
                    " VALUES ('r:a.yaml#a', (SELECT id FROM repo), 'scheduled', :t)"
                ),
                {"t": t},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO schedule_state (operation_id, next_tick_at, last_tick_at, run_count, updated_at)"
                    " VALUES ((SELECT id FROM operation), :t, :t, 1, :t)"
                ),
                {"t": t},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO schedule_tick (operation_id, tick_at, claimed_at)"
                    " VALUES ((SELECT id FROM operation), :t, :t)"
                ),
                {"t": t},
            )
    finally:
        engine.dispose()

    assert upgrade(db_url) == head_revision()
    assert schema_diff(db_url) == []
    store = Store.open(db_url)
    backend = ScriptedBackend()
    settings = Settings(repos=[RepoConfig(name="r", url="file:///r")], database=db_url, data_dir=tmp_path)
    try:
        [tick] = store.ticks("r:a.yaml#a")
        assert (tick.outcome, tick.tick_at, tick.reason) == ("fired", T0, None)
        state = store.schedule_state("r:a.yaml#a")
        assert state is not None and state.run_count == 1 and state.spec is None
        daemon = build_daemon(settings, store, backend, clock=lambda: T0 + dt.timedelta(days=1), timer=False)
        # A schedule registered before 0004 has no spec to run: not reported to the planner (so it
        # registers it again) and never fired from the stale row.
        assert daemon.orchestration.tracked("r") == ({}, {})
        daemon.fire_ticks()
        assert backend.submits == [] and store.ticks("r:a.yaml#a") == [tick]
    finally:
        store.close()
