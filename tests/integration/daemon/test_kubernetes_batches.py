"""A commit's new runs as one batch (issue 18), on the real control plane through the production
daemon (wiring.build_daemon), on SQLite and PostgreSQL: recorded in a few statements whatever
their number, submitted to the API server concurrently, and one run refused for good (a foreign
Job holds its name) leaves every other run submitted with its backend reference recorded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from reconciler.backends.kubernetes import KubernetesBackend
from reconciler.backends.kubernetes.client import Client
from reconciler.config import Settings
from reconciler.daemon import Daemon
from reconciler.loader import LoadedCommit, load_commit
from reconciler.model import run_name
from reconciler.tracking import Store, upgrade
from reconciler.wiring import build_daemon
from tests.cluster.controlplane import ControlPlane
from tests.infra.git_server import GitRepoFactory

pytestmark = pytest.mark.k8s

JOBS = 40


def job(i: int) -> str:
    return f"""version: 1.1
kind: operation
name: j{i:02d}
component:
  run: {{kind: job, container: {{image: busybox, command: ["true"]}}}}
"""


@pytest.fixture
def daemon(
    k8s_cluster: ControlPlane, k8s_namespace: str, git_repo_factory: GitRepoFactory, tmp_path: Path, db_url: str
) -> Iterator[tuple[Daemon, KubernetesBackend, Store, Any]]:
    git = git_repo_factory.create("models", {"ops/.keep.yaml": ""})
    upgrade(db_url)
    settings = Settings(
        repos=[{"name": "models", "url": git.file_url}],  # type: ignore[list-item]
        backend="kubernetes",
        kubernetes={"namespace": k8s_namespace},  # type: ignore[arg-type]
        data_dir=tmp_path / "data",
        database=db_url,
    )
    store = Store.open(db_url)
    with contextlib.closing(k8s_cluster.api_client()) as api:
        backend = KubernetesBackend(api, namespace=k8s_namespace, instance="i")
        d = build_daemon(settings, store, backend, timer=False)
        try:
            yield d, backend, store, git
        finally:
            d.stop(deadline=5)
            store.close()


def jobs(client: Client, namespace: str) -> dict[str, dict[str, Any]]:
    found = client.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs", verb="LIST")
    return {j["metadata"]["name"]: j for j in found.get("items") or []}


def test_a_commits_runs_are_one_batch_and_one_refused_run_loses_no_other(
    daemon: tuple[Daemon, KubernetesBackend, Store, Any], k8s_namespace: str
) -> None:
    d, backend, store, git = daemon
    assert d.applier.submit_concurrency == KubernetesBackend.submit_concurrency > 1
    sha = git.commit("jobs", {f"ops/j{i:02d}.yaml": job(i) for i in range(JOBS)})
    git.push()
    # The Job one run will get is named after the run: someone else's Job has that name.
    source = d.repos["models"].source
    source.fetch()
    loaded = load_commit(source, "models", sha)
    assert isinstance(loaded, LoadedCommit)
    names = {k.name: run_name(k, o.spec_hash, sha) for k, o in loaded.desired.ops.items()}
    taken = names["j07"]
    client = Client(backend.client.api_client)
    foreign = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": taken, "namespace": k8s_namespace},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
    }
    client.request("POST", f"/apis/batch/v1/namespaces/{k8s_namespace}/jobs", verb="CREATE", body=foreign)

    inserts: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO RUN "):
            inserts.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        result = d.reconcile_repo("models")
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)

    assert len(inserts) == 1, inserts  # 40 runs, one statement
    [(what, why)] = result.applied.failures
    assert what.startswith("create ") and what.endswith("#j07") and taken in why, (what, why)
    assert result.applied.counts["create"] == JOBS - 1
    runs = {run.name: run for run, _ in store.list_runs(repo="models")}
    assert set(runs) == set(names.values())  # every run recorded once
    refused = runs.pop(taken)
    assert refused.status == "failed" and refused.backend_ref is None
    assert "not this run's" in (store.history(taken)[-1].message or "")
    assert all(run.backend_ref for run in runs.values()), [n for n, r in runs.items() if not r.backend_ref]
    live = jobs(client, k8s_namespace)
    assert set(runs) <= set(live)
    assert "reconciler.polyaxon.io/run" not in (live[taken]["metadata"].get("labels") or {})  # left alone

    # Again: nothing new is recorded or submitted, the refused run stays refused.
    again = d.reconcile_repo("models")
    assert not again.applied.counts.get("create")
    assert {run.name for run, _ in store.list_runs(repo="models")} == set(names.values())
