"""The security suite: the daemon as a `reconciler run` process, real HTTP, a real Gitea, tried
as an attacker would try it. Each module covers threats of the README's "Security model".

Fixtures come from the end-to-end suite (`daemons`, `publish`); `reachable` lets runs that the
daemon switches to `nobody` reach their directories under the test's temp dir.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.e2e.conftest import daemons, publish  # noqa: F401  (fixtures used by this suite)


@pytest.fixture
def reachable(tmp_path: Path) -> Path:
    """`tmp_path`, traversable (not listable) by other users, as a data dir's parents must be
    for runs switched to another user; pytest makes its temp dirs private."""
    for directory in [tmp_path, *tmp_path.parents]:
        if directory == Path("/tmp") or directory == directory.parent:
            break
        info = directory.stat()
        if info.st_uid == os.geteuid():
            os.chmod(directory, stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
    return tmp_path


def secret_file(path: Path, value: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path
