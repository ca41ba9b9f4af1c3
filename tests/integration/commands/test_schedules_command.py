"""`reconciler schedules list` after a real sync: the JSON contract and the next ticks."""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from typer.testing import CliRunner

from reconciler.cli import app
from tests.infra.git_server import GitRepoFactory

NIGHTLY = """\
kind: operation
name: nightly
schedule: {kind: cron, cron: "30 4 * * *"}
component:
  run: {kind: job, container: {image: busybox, command: [echo, nightly]}}
"""
EVERY_HOUR = """\
kind: operation
name: hourly
schedule: {kind: interval, frequency: 3600, startAt: "2026-01-01T00:00:00Z"}
component:
  run: {kind: job, container: {image: busybox, command: [echo, hourly]}}
"""


def test_schedules_list_shows_registered_schedules_and_their_next_ticks(
    git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo_factory.create(
        "scheduled",
        {
            "ops/nightly.yaml": NIGHTLY,
            "ops/hourly.yaml": EVERY_HOUR,
            ".polyaxon-reconciler.yaml": "timezone: Europe/Paris\n",
        },
    )
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"repos: [{{name: demo, url: '{repo.file_url}', branch: main}}]\n"
        f"database: sqlite:///{tmp_path / 'db.sqlite'}\ndata_dir: {tmp_path / 'data'}\n"
        # Runs keep this user: a root daemon's default (nobody) could not reach the temp dir.
        f"local: {{run_as: {getpass.getuser()}}}\n"
    )
    runner = CliRunner()
    synced = runner.invoke(app, ["sync", "--config", str(config)])
    assert synced.exit_code == 0, synced.output

    listed = runner.invoke(app, ["schedules", "list", "--config", str(config), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["op"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"demo:ops/nightly.yaml#nightly", "demo:ops/hourly.yaml#hourly"}
    for row in rows.values():
        assert {"op", "kind", "next_ticks", "runs"} <= set(row)
        assert row["runs"] == 0 and len(row["next_ticks"]) == 3
    nightly = [datetime.fromisoformat(t) for t in rows["demo:ops/nightly.yaml#nightly"]["next_ticks"]]
    assert rows["demo:ops/nightly.yaml#nightly"]["kind"] == "cron"
    assert all((t.hour, t.minute) == (4, 30) and t.utcoffset() is not None for t in nightly), "cron in the repo's zone"
    hourly = [datetime.fromisoformat(t) for t in rows["demo:ops/hourly.yaml#hourly"]["next_ticks"]]
    assert rows["demo:ops/hourly.yaml#hourly"]["kind"] == "interval"
    assert [(b - a).total_seconds() for a, b in pairwise(hourly)] == [3600, 3600]
