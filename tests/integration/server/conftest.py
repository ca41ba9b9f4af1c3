"""The production daemon over the scripted backend, populated with `world.build`, served on a real
port (SQLite; the read queries' PostgreSQL side is covered by tests/integration/tracking)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra.daemon import daemon_harness
from tests.infra.git_server import GitRepoFactory
from tests.integration.server.world import T0, World, build


@pytest.fixture
def world(tmp_path: Path, git_repo_factory: GitRepoFactory) -> Iterator[World]:
    with daemon_harness(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", git_repo_factory, start=T0) as h:
        yield build(h)


@pytest.fixture
def served(world: World) -> Iterator[Any]:
    url = world.h.start(workers=1)
    world.url = url  # type: ignore[attr-defined]
    yield world
