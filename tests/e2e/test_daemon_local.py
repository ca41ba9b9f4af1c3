"""The daemon end to end on real parts: `reconciler run` as a subprocess, repos served by git's
own smart-HTTP server (and over file://), the local backend running real processes, and the
tracking database on SQLite and on PostgreSQL (created with `reconciler db upgrade`).

Everything is observed from outside, as a user would: the HTTP API, `/metrics`, `/readyz`, the
`reconciler runs|ops` commands, files the runs write, and the database the daemon wrote.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.tracking import Store
from tests.e2e.conftest import MakeDaemon
from tests.e2e.harness import FINAL, DaemonProcess, job, reconciler_argv, service
from tests.infra.git_server import GitRepoFactory

REPO = "models"
FAST = 0.5  # poll interval (s): changes are picked up quickly without webhooks


def repo_entry(url: str, name: str = REPO, interval: float = FAST, **kw: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "branch": "main", "interval": interval, **kw}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def applied_commit(db: str, repo: str = REPO) -> str | None:
    """The last commit the daemon recorded for `repo` (written after its plan was applied)."""
    store = Store.open(db)
    try:
        last = store.last_commit(repo)
        return last.sha if last else None
    finally:
        store.close()


# --- (a) commit -> run -> succeeded; (b) new params -> second run, unrelated change -> none --------


def test_commit_runs_job_and_only_new_specs_run_again(
    daemons: MakeDaemon, migrated: str, git_repo_factory: GitRepoFactory, publish: Any, tmp_path: Path
) -> None:
    starts = tmp_path / "starts.log"
    command = f'echo "$POLYAXON_RUN_NAME {{{{ tag }}}}" >> {starts}'
    git = git_repo_factory.create("models", {"README.md": "models\n"})
    served = publish(git)
    daemon = daemons([repo_entry(served.url)], migrated).start()

    first = git.commit("train v1", {"ops/train.yaml": job("train", command, params={"tag": "v1"})})
    git.push()
    run = daemon.wait_run("#train", lambda r: r["status"] == "succeeded", "the first run to succeed")
    assert run["cause"] == "commit" and run["commit"] == first
    history = [h["status"] for h in daemon.api_run(run["name"])["history"]]
    assert history[0] == "created" and history[-1] == "succeeded", history
    assert lines(starts) == [f"{run['name']} v1"]

    # The CLI reads the same database the daemon writes.
    listed = daemon.cli_json("runs", "list")
    assert [(r["name"], r["op"], r["status"], r["cause"], r["commit"]) for r in listed] == [
        (run["name"], f"{REPO}:ops/train.yaml#train", "succeeded", "commit", first)
    ]

    second = git.commit("train v2", {"ops/train.yaml": job("train", command, params={"tag": "v2"})})
    git.push()
    run2 = daemon.wait_run("#train", lambda r: r["commit"] == second and r["status"] == "succeeded", "a second run")
    assert run2["name"] != run["name"]
    assert lines(starts) == [f"{run['name']} v1", f"{run2['name']} v2"]

    # Same operations, another file changed: the commit is applied and nothing runs.
    third = git.commit("docs", {"README.md": "models, v2\n"})
    git.push()
    daemon.wait(lambda: applied_commit(migrated) == third, "the unrelated commit to be applied")
    assert len(daemon.api_runs()) == 2
    assert len(lines(starts)) == 2
