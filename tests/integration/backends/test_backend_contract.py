"""One contract, two backends: the scripted fake the orchestration tests use and the real
`LocalBackend` (real processes) answer the same checks, so the fake cannot drift from the contract
the daemon relies on: submit is idempotent by name, deleting what is gone is no error, and
`list_owned` shows what was submitted, with our ownership labels and annotations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.backends import Backend
from reconciler.backends.local import LocalBackend
from reconciler.model import ANNOTATION_COMMIT, ANNOTATION_OP_KEY, ANNOTATION_REPO, Cause, OpKey, RunRequest
from tests.infra.scripted_backend import ScriptedBackend


def request(name: str, command: str = "sleep 30") -> RunRequest:
    op = OpKey("contract", f"ops/{name}.yaml", name)
    return RunRequest(
        name=f"{name}-0123abcd-89ef4567",
        op=op,
        kind="job",
        spec_hash="0123abcd" * 8,
        effective={"run": {"kind": "job", "container": {"image": "busybox", "command": ["/bin/sh", "-c", command]}}},
        cause=Cause.COMMIT,
        cause_id="c0ffee",
        commit="c0ffee",
    )


@pytest.fixture(params=["scripted", "local"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "scripted":
        fake = ScriptedBackend()
        yield fake
        fake.close()
        return
    real = LocalBackend(tmp_path / "local-runs", interval=0.05, stop_grace=2.0)
    try:
        yield real
    finally:
        real.close()
        sweeper = LocalBackend(tmp_path / "local-runs", supervise=False)
        for owned in sweeper.list_owned():
            sweeper.delete(owned.run)
        sweeper.close()


def test_submit_is_idempotent_by_name(backend: Backend) -> None:
    run = request("train")
    first = backend.submit(run)
    assert backend.submit(run) == first
    assert [o.run for o in backend.list_owned()] == [run.name]


def test_list_owned_shows_submitted_runs_with_our_labels(backend: Backend) -> None:
    runs = [request("train"), request("evaluate")]
    for run in runs:
        backend.submit(run)
    owned = {o.run: o for o in backend.list_owned()}
    assert sorted(owned) == sorted(r.name for r in runs)
    for run in runs:
        found = owned[run.name]
        assert (found.op_slug, found.kind, found.spec_hash) == (run.op.slug, "job", run.spec_hash)
        assert found.annotations[ANNOTATION_OP_KEY] == str(run.op)
        assert found.annotations[ANNOTATION_REPO] == "contract"
        assert found.annotations[ANNOTATION_COMMIT] == "c0ffee"
        assert found.status is not None


def test_delete_of_what_is_gone_is_no_error(backend: Backend) -> None:
    run = request("train")
    backend.submit(run)
    backend.delete(run.name)
    assert backend.list_owned() == []
    backend.delete(run.name)
    backend.delete("never-submitted-00000000-00000000")
    assert backend.list_owned() == []


def test_observe_returns_after_its_timeout_when_nothing_happens(backend: Backend) -> None:
    started = time.monotonic()
    assert list(backend.observe(timeout=0.05)) == []
    assert time.monotonic() - started < 5.0  # the daemon's observer thread checks for stop between calls
