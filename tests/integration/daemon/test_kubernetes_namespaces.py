"""Namespaces on the real control plane: a repo's runs go to the daemon's namespace unless its repo
config names another the daemon may use (`kubernetes.namespaces`); naming any other namespace is
a located error in `.polyaxon-reconciler.yaml`, and nothing of that commit is applied.

Before, a repo config without `namespace` meant `default`, which the shipped daemon
(`kubernetes.namespace: polyaxon-reconciler`) refuses: every run of such a repo failed.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.backends.kubernetes import KubernetesBackend
from reconciler.config import Settings
from reconciler.model import LABEL_MANAGED_BY, MANAGED_BY
from reconciler.tracking import Store, upgrade
from reconciler.wiring import build_daemon
from tests.cluster.controlplane import ControlPlane
from tests.e2e.harness import job
from tests.infra.git_server import GitRepoFactory

pytestmark = pytest.mark.k8s


@pytest.fixture
def second_namespace(k8s_cluster: ControlPlane) -> Iterator[str]:
    name = f"t2-{uuid.uuid4().hex[:10]}"
    k8s_cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        k8s_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def jobs_in(k8s_cluster: ControlPlane, namespace: str) -> list[dict[str, object]]:
    found = json.loads(k8s_cluster.kubectl("get", "jobs", "-n", namespace, "-o", "json").stdout)["items"]
    return [j for j in found if j["metadata"]["labels"].get(LABEL_MANAGED_BY) == MANAGED_BY]


def test_runs_default_to_the_daemons_namespace_and_other_namespaces_must_be_allowed(
    k8s_cluster: ControlPlane,
    k8s_namespace: str,
    second_namespace: str,
    git_repo_factory: GitRepoFactory,
    tmp_path: Path,
) -> None:
    plain = git_repo_factory.create("plain", {"ops/a.yaml": job("a", "true")})
    other = git_repo_factory.create(
        "other", {".polyaxon-reconciler.yaml": f"namespace: {second_namespace}\n", "ops/b.yaml": job("b", "true")}
    )
    rogue = git_repo_factory.create(
        "rogue", {".polyaxon-reconciler.yaml": "project: x\nnamespace: kube-system\n", "ops/c.yaml": job("c", "true")}
    )
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(database)
    settings = Settings(
        repos=[{"name": n, "url": r.file_url} for n, r in (("plain", plain), ("other", other), ("rogue", rogue))],  # type: ignore[misc]
        backend="kubernetes",
        kubernetes={"namespace": k8s_namespace, "namespaces": [second_namespace]},  # type: ignore[arg-type]
        data_dir=tmp_path / "data",
        database=database,
    )
    store = Store.open(database)
    with contextlib.closing(k8s_cluster.api_client()) as api:
        backend = KubernetesBackend(api, namespace=settings.kubernetes.all_namespaces, instance="i")
        daemon = build_daemon(settings, store, backend, timer=False)
        try:
            assert daemon.reconcile_repo("plain").converged
            assert daemon.reconcile_repo("other").converged
            refused = daemon.reconcile_repo("rogue")
        finally:
            daemon.stop(deadline=5)
            store.close()

    assert [j["metadata"]["labels"]["reconciler.polyaxon.io/op"] for j in jobs_in(k8s_cluster, k8s_namespace)] == ["a"]
    assert [j["metadata"]["labels"]["reconciler.polyaxon.io/op"] for j in jobs_in(k8s_cluster, second_namespace)] == [
        "b"
    ]
    assert jobs_in(k8s_cluster, "kube-system") == []
    assert refused.skipped == "invalid repo config" and not refused.plan
    [error] = refused.invalid
    assert str(error).startswith(".polyaxon-reconciler.yaml:2:12: namespace: 'kube-system' is not allowed"), str(error)
    assert k8s_namespace in error.message and second_namespace in error.message
    store = Store.open(database)
    try:
        assert [k for _, k in store.list_runs(repo="rogue")] == []
    finally:
        store.close()
