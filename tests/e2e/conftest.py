"""Fixtures for the end-to-end tests: daemons as subprocesses, cleaned up whatever happens.

`daemons` makes `DaemonProcess`es for a test and, at teardown, crashes any still running (a
SIGTERM test stops its own), kills the local runs they left (by design the local backend leaves
them running for the next daemon), and fails the test if any process carrying the test's temp
dir in its command line or environment is still alive after that.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import DaemonProcess, leftover_processes, reconciler_argv, sweep_local_runs
from tests.infra.git_server import GitHttpServer, GitRepo, PublishedRepo

MakeDaemon = Callable[..., DaemonProcess]


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[MakeDaemon]:
    made: list[DaemonProcess] = []

    def make(repos: Sequence[dict[str, Any]], database: str, *, name: str = "daemon", **kw: Any) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path / name, repos, database, **kw)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.kill9()
    for daemon in made:
        sweep_local_runs(daemon.data_dir)
    marker = str(tmp_path)
    deadline = time.monotonic() + 15
    while (left := leftover_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        pytest.fail("processes left running after the test:\n" + "\n".join(f"{p.pid}: {p.cmdline}" for p in left))


@pytest.fixture
def publish(git_http_server: GitHttpServer) -> Iterator[Callable[[GitRepo], PublishedRepo]]:
    """Serve a test repo's bare remote over smart HTTP for the length of the test."""
    published: list[PublishedRepo] = []

    def do(repo: GitRepo) -> PublishedRepo:
        p = git_http_server.publish(repo.remote)
        published.append(p)
        return p

    yield do
    for p in published:
        git_http_server.unpublish(p)


@pytest.fixture
def migrated(db_url: str, request: pytest.FixtureRequest) -> str:
    """`db_url` with the schema created by `reconciler db upgrade`, as an operator does for PostgreSQL."""
    # Set `daemons` up after the database, so its teardown (crash the daemons) runs before the
    # database is dropped: a daemon outliving its database only logs connection errors.
    request.getfixturevalue("daemons")
    done = subprocess.run(
        [*reconciler_argv(), "db", "upgrade", "--db", db_url], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return db_url
