"""`reconciler sync --config FILE`: reconcile each configured repo once and exit.

Exit codes are the contract scripts and CI jobs rely on: 0 converged, 1 when a file is invalid
or an operation failed to apply, 2 for a bad settings file. `reconciler runs list --format json`
is the other half of that contract: what a script reads back afterwards.
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from reconciler.backends.local.store import RunDir
from tests.e2e.conftest import MakeDaemon
from tests.e2e.harness import DaemonProcess, job, local_run_dir, reconciler_argv
from tests.infra.git_server import GitRepoFactory

REPO = "models"


def sync(daemon: DaemonProcess) -> subprocess.CompletedProcess[str]:
    return daemon.cli("sync")


def exit_code(daemon: DaemonProcess, run: str) -> int | None:
    """The exit code the local backend's wrapper recorded for the run's first attempt."""
    recorded = RunDir(local_run_dir(daemon.data_dir, run)).exit(1)
    return recorded.code if recorded is not None else None


def test_sync_converged_then_invalid(
    migrated: str, daemons: MakeDaemon, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    git = git_repo_factory.create("models", {"ops/hello.yaml": job("hello", "echo hello")})
    daemon = daemons([{"name": REPO, "url": git.file_url}], migrated)

    done = sync(daemon)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{REPO}: commit {git.head()[:12]} actions {{'create': 1}}" in done.stdout

    runs = daemon.cli_json("runs", "list")
    assert len(runs) == 1
    [run] = runs
    # The field contract of `runs list --format json`.
    required = {"name", "op", "status", "cause", "commit", "created_at"}
    assert required <= set(run), run
    assert run["op"] == f"{REPO}:ops/hello.yaml#hello"
    assert run["cause"] == "commit" and run["commit"] == git.head()
    assert run["status"] in {"created", "starting", "running", "succeeded"}
    assert datetime.fromisoformat(run["created_at"]).tzinfo is not None
    assert all(isinstance(run[k], str) for k in required)

    # Nothing new: still converged, nothing created.
    again = sync(daemon)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "actions none" in again.stdout

    bad = git.commit("broken", {"ops/broken.yaml": "version: 1.1\nkind: operation\nname: [oops\n"})
    git.push()
    broken = sync(daemon)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"commit {bad[:12]}" in broken.stdout
    assert "  ! ops/broken.yaml:" in broken.stdout
    assert len(daemon.cli_json("runs", "list")) == 1, "an invalid file starts nothing and stops nothing"


def test_a_run_the_backend_refuses_fails_the_sync(
    migrated: str, daemons: MakeDaemon, git_repo_factory: GitRepoFactory
) -> None:
    """A create the backend refuses for good (a distributed kind with the local backend) is a
    failed action: `sync` exits 1 and says why, and the run is recorded unschedulable."""
    tfjob = "version: 1.1\nkind: operation\nname: dist\ncomponent:\n  run:\n    kind: tfjob\n" + (
        "    worker: {replicas: 2, container: {image: tensorflow/tensorflow}}\n"
    )
    git = git_repo_factory.create("models", {"ops/dist.yaml": tfjob})
    daemon = daemons([{"name": REPO, "url": git.file_url}], migrated)
    done = sync(daemon)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "✗ create models:ops/dist.yaml#dist" in done.stdout and "unschedulable" in done.stdout
    [run] = daemon.cli_json("runs", "list")
    assert run["status"] == "unschedulable"


def test_second_sync_records_what_the_first_started(
    migrated: str, daemons: MakeDaemon, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    """`sync` has no observer: a run it started finishes after it exited. The next reconcile
    must record that outcome (it finds the run finished in the backend) instead of leaving the
    run `created` in the history for ever."""
    git = git_repo_factory.create("models", {"ops/hello.yaml": job("hello", "echo hello")})
    daemon = daemons([{"name": REPO, "url": git.file_url}], migrated)
    assert sync(daemon).returncode == 0
    [run] = daemon.cli_json("runs", "list")
    daemon.wait(lambda: exit_code(daemon, run["name"]) == 0, "the job to finish")

    assert sync(daemon).returncode == 0
    shown = daemon.cli_json("runs", "show", run["name"])
    assert shown["status"] == "succeeded", shown
    history = [h["status"] for h in shown["history"]]
    assert history[0] == "created" and history[-1] == "succeeded", history


@pytest.mark.parametrize(
    "settings",
    [
        "repos: [{name: models}]\n",  # no url
        "repos:\n  - name: Bad Name!\n    url: file:///x\n",
        "backend: nomad\n",
        "unknown_key: 1\n",
        "- a list, not a mapping\n",
    ],
)
def test_sync_bad_settings_exit_2(tmp_path: Path, settings: str) -> None:
    config = tmp_path / "cfg.yaml"
    where = f"data_dir: {tmp_path / 'data'}\ndatabase: sqlite:///{tmp_path / 'db.sqlite'}\n"
    config.write_text(settings if settings.startswith("-") else settings + where)
    done = subprocess.run(
        [*reconciler_argv(), "sync", "--config", str(config)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert str(config) in done.stderr
    assert not (tmp_path / "db.sqlite").exists(), "a bad config must not touch the database"


def test_sync_missing_config_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    done = subprocess.run(
        [*reconciler_argv(), "sync", "--config", str(missing)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert f"{missing}: no such file" in done.stderr
