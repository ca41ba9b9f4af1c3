"""`/readyz`'s database check writes: a database that refuses writes, or a SQLite file deleted or
replaced under the daemon, is not ready (reading alone would still succeed in all three)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.tracking import Store, upgrade

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.fixture
def sqlite(tmp_path: Path) -> tuple[Store, Path]:
    path = tmp_path / "db" / "reconciler.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return Store.open(url), path


def test_a_deleted_sqlite_file_is_not_ready(sqlite: tuple[Store, Path]) -> None:
    store, path = sqlite
    try:
        assert store.write_problem(NOW) is None
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        assert store.last_commit("r") is None  # reading still "works", on a file nobody sees
        assert store.write_problem(NOW) == f"the database file {path} is gone"
    finally:
        store.close()


def test_a_replaced_sqlite_file_is_not_ready(sqlite: tuple[Store, Path]) -> None:
    store, path = sqlite
    try:
        assert store.write_problem(NOW) is None
        shutil.copy(path, f"{path}.new")
        os.replace(f"{path}.new", path)
        assert store.write_problem(NOW) == f"the database file {path} was replaced since it was opened"
    finally:
        store.close()


def test_a_database_that_refuses_writes_is_not_ready(tmp_path: Path) -> None:
    """The kernel refuses the writes (RLIMIT_FSIZE, as a full disk would): in a child process."""
    url = f"sqlite:///{tmp_path / 'reconciler.db'}"
    upgrade(url)
    script = f"""
import datetime as dt, resource, signal
from reconciler.tracking import Store
now = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
store = Store.open({url!r})
assert store.write_problem(now) is None
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
print(store.write_problem(now))
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(store.write_problem(now))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    refused, again = done.stdout.strip().splitlines()
    assert refused.startswith("a write failed: OperationalError"), refused
    assert again == "None"  # room again: ready again
