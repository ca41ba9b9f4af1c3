"""Schemathesis over the described API (`/openapi.json`) of the production daemon on real HTTP:
no answer is a 5xx, every answer's status, content type, headers and body match the description,
bad input is refused with a 4xx and good input accepted, with and without the API token."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra.daemon import daemon_harness
from tests.infra.git_server import GitRepoFactory
from tests.integration.server.world import T0, World, build

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
    ]
)


def schemathesis(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary, "schemathesis is a dev dependency (make venv)"
    argv = [
        binary, "run", f"{url}/openapi.json",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", os.environ.get("RECONCILER_FUZZ_EXAMPLES", "25"),
        "--seed", os.environ.get("RECONCILER_FUZZ_SEED", "15"),
        "--request-timeout", "20",
        "--workers", "1",
        "--generation-database", "none",
        "--no-color",
        "--report", "junit", "--report-dir", str(tmp_path / "schemathesis"),
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    return subprocess.run(argv, capture_output=True, text=True, timeout=1200, env=env, cwd=tmp_path)


TOKEN = "fuzzing-api-token-0123456789"


@pytest.fixture
def guarded(
    tmp_path: Path, git_repo_factory: GitRepoFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[World]:
    """The world behind an API token (which may also report for any run, so the reporting
    endpoints are fuzzed past authentication)."""
    monkeypatch.setenv("RECONCILER_FUZZ_API_TOKEN", TOKEN)
    server = {"host": "127.0.0.1", "port": 0, "token_env": "RECONCILER_FUZZ_API_TOKEN"}
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with daemon_harness(tmp_path / "h", db, git_repo_factory, start=T0, server=server) as h:
        world = build(h)
        world.url = h.start(workers=1)  # type: ignore[attr-defined]
        yield world


@pytest.mark.slow
def test_the_described_api_holds_under_fuzzing(guarded: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="reconciler")
    done = schemathesis(guarded.url, tmp_path, "--header", f"Authorization: Bearer {TOKEN}")
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    crashed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("reconciler")]
    assert not crashed, crashed  # no request made the daemon log a failure either
