"""The daemon as a process while its PostgreSQL goes away for 15 seconds with a schedule firing.

Before the supervised loop, an exception in the `ticks`, `resume` or `gauges` work ended the
worker thread that met it; two such errors and the queue stopped draining while `/healthz` said
ok. Now every work item fails, is counted and is retried: the process stays alive, says the
database is what is wrong, and once PostgreSQL is back it fires the schedule again, each tick
once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.tracking import Store
from tests.e2e.conftest import MakeDaemon
from tests.e2e.harness import job, metric, reconciler_argv
from tests.infra.git_server import GitRepoFactory
from tests.infra.postgres import PostgresServer, start_postgres, stop_postgres

OUTAGE = 15.0  # seconds the database is down: the scenario itself, not a synchronisation

pytestmark = pytest.mark.postgres


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, so stopping it harms no other test."""
    try:
        server = start_postgres()
    except Exception as e:  # pragma: no cover - the session fixture reports a missing install
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {e}")
        pytest.skip(f"no PostgreSQL: {e}")
    try:
        yield server
    finally:
        stop_postgres(server)


def every(seconds: int) -> str:
    doc: dict[str, Any] = yaml.safe_load(job("tick", "true"))
    doc["schedule"] = {"kind": "interval", "frequency": seconds}
    return yaml.safe_dump(doc, sort_keys=False)


def tick_runs(url: str) -> list[Any]:
    store = Store.open(url)
    try:
        return [run for run, _ in store.list_runs(op_key="models:ops/tick.yaml#tick")]
    finally:
        store.close()


def test_the_daemon_rides_out_a_database_outage_and_fires_each_tick_once(
    daemons: MakeDaemon, own_postgres: PostgresServer, git_repo_factory: GitRepoFactory, publish: Any, tmp_path: Path
) -> None:
    import subprocess

    url = own_postgres.url(own_postgres.create_database())
    done = subprocess.run([*reconciler_argv(), "db", "upgrade", "--db", url], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    git = git_repo_factory.create("models", {"ops/tick.yaml": every(2)})
    daemon = daemons([{"name": "models", "url": publish(git).url, "branch": "main", "interval": 1}], url).start()
    daemon.wait(lambda: len(tick_runs(url)) >= 2, "two ticks before the outage")

    own_postgres.stop()
    down_at = time.monotonic()
    daemon.wait(lambda: (r := daemon.get("/readyz")) is not None and r[0] == 503 and "database" in r[1], "not ready")
    daemon.wait(lambda: metric(daemon.metrics(), "reconciler_work_errors_total", kind="ticks") >= 1, "ticks failing")
    while time.monotonic() - down_at < OUTAGE:
        assert daemon.running, daemon.log_tail()
        health = daemon.get("/healthz")
        assert health is not None and health[0] == 200, (health, daemon.log_tail())
        time.sleep(0.5)
    own_postgres.start()

    before = len(tick_runs(url))
    daemon.wait(lambda: len(tick_runs(url)) >= before + 2, "ticks after the outage", timeout=60)
    daemon.wait(lambda: (r := daemon.get("/readyz")) is not None and r[0] == 200, "ready again", timeout=60)
    runs = tick_runs(url)
    causes = [run.cause_id for run in runs]
    assert len(causes) == len(set(causes)), "a tick fired twice"
    assert all(str(run.cause) == "schedule" for run in runs)
    health = daemon.get("/healthz")
    assert health is not None and health[0] == 200
