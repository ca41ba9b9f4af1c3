"""Fixtures for the local backend tests (helpers live in `local_backend_helpers`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.backends.local import LocalBackend
from tests.integration.backends.local.local_backend_helpers import Backends


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[Backends]:
    pool = Backends(tmp_path / "local-runs")
    yield pool
    pool.cleanup()


@pytest.fixture
def backend(backends: Backends) -> LocalBackend:
    return backends.open()
