"""Fixtures for the local backend tests (helpers live in `local_backend_helpers`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from local_backend_helpers import Backends

from reconciler.backends.local import LocalBackend


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[Backends]:
    pool = Backends(tmp_path / "local-runs")
    yield pool
    pool.cleanup()


@pytest.fixture
def backend(backends: Backends) -> LocalBackend:
    return backends.open()
