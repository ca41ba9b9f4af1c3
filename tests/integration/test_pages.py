"""The pages commit statuses link to, served over real HTTP from a real tracking DB."""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.metrics import Metrics
from reconciler.model import Cause
from reconciler.server import HttpServer, build_app
from reconciler.server.pages import page_routes
from reconciler.statuses import Status
from reconciler.tracking import Store, upgrade

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
SHA = "a" * 40


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    store = Store.open(url)
    store.ensure_repo("ml", "file:///repo", "main", T0)
    store.record_commit(
        "ml",
        SHA,
        "main",
        T0,
        T0,
        valid=False,
        errors=[{"file": "ops/bad.yaml", "line": 3, "column": 5, "message": "<script>x</script>"}],
    )
    store.upsert_operation("ml:ops/train.yaml#train", "ml", "one-shot", T0, spec_hash="h" * 64, commit_sha=SHA)
    store.create_run(
        op_key="ml:ops/train.yaml#train",
        cause=Cause.COMMIT,
        cause_id=SHA,
        name="train-1",
        spec_hash="h" * 64,
        backend="local",
        now=T0,
        commit_sha=SHA,
        kind="job",
        spec={},
    )
    store.transition("train-1", Status.RUNNING, at=T0, reason="Started", message="attempt 1")
    server = HttpServer(build_app(Metrics(), routes=page_routes(store)), "127.0.0.1", 0)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
        store.close()


def test_run_page_shows_the_run_and_its_history(served: str) -> None:
    code, body = fetch(f"{served}/runs/train-1")
    assert code == 200
    assert "Run train-1" in body and "ml:ops/train.yaml#train" in body
    history = body.split('id="history-h">History</h2>', 1)[1]
    assert history.index("created") < history.index("running") and "attempt 1" in history
    assert fetch(f"{served}/runs/nope")[0] == 404


def test_commit_page_shows_validation_errors_escaped_and_the_runs(served: str) -> None:
    code, body = fetch(f"{served}/repos/ml/commits/{SHA}")
    assert code == 200
    assert "invalid" in body and "ops/bad.yaml:3:5" in body
    assert "<script>" not in body and "&lt;script&gt;" in body
    assert 'href="/runs/train-1"' in body
    assert fetch(f"{served}/repos/ml/commits/{'b' * 40}")[0] == 404
