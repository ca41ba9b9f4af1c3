"""Long-running operations converge once what kept them from running is fixed, without a commit,
on the real control plane through the production daemon (wiring.build_daemon):

- a raycluster left `unschedulable` because KubeRay's CRD is missing runs once the CRD is
  installed (the planner submits it again, with backoff);
- a service `failed` because a foreign object holds the name of its Kubernetes Service runs once
  that object is removed (each attempt is a run of its own, cause `retry`); the failed attempts
  leave nothing running behind them.

Before: both stayed down until someone committed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.backends.kubernetes import KubernetesBackend
from reconciler.backends.kubernetes.client import MERGE, Client
from reconciler.config import Settings
from reconciler.daemon import Daemon
from reconciler.loader import LoadedCommit, load_commit
from reconciler.model import RunRequest, run_name
from reconciler.render.service import service_name
from reconciler.tracking import Store, upgrade
from reconciler.wiring import build_daemon
from tests.cluster.controlplane import CRD_DIR, ControlPlane
from tests.cluster.poll import wait_for
from tests.infra.git_server import GitRepoFactory

pytestmark = pytest.mark.k8s

RAY = """version: 1.1
kind: operation
name: ray
component:
  run:
    kind: raycluster
    head: {container: {image: rayproject/ray}}
    workers: {small: {replicas: 1, container: {image: rayproject/ray}}}
"""
WEB = """version: 1.1
kind: operation
name: web
component:
  run: {kind: service, ports: [8080], container: {image: nginx}}
"""
DEADLINE = 90.0  # the first retry comes 10 s after the failure; a loaded machine adds to it


class Harness:
    def __init__(self, daemon: Daemon, backend: KubernetesBackend, store: Store) -> None:
        self.daemon, self.backend, self.store = daemon, backend, store

    def step(self) -> None:
        """One reconcile, and the transitions the observer thread would record meanwhile."""
        for transition in self.backend.observe(timeout=0.2):
            self.daemon.record_transition(transition)
        self.daemon.reconcile_repo("models")
        for transition in self.backend.observe(timeout=0.2):
            self.daemon.record_transition(transition)

    def runs(self, op: str) -> list[Any]:
        return [run for run, key in self.store.list_runs(repo="models") if key.endswith(f"#{op}")]


@pytest.fixture
def harness(
    k8s_cluster: ControlPlane, k8s_namespace: str, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> Iterator[tuple[Harness, Any]]:
    git = git_repo_factory.create("models", {"ops/.keep.yaml": ""})
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(database)
    settings = Settings(
        repos=[{"name": "models", "url": git.file_url}],  # type: ignore[list-item]
        backend="kubernetes",
        kubernetes={"namespace": k8s_namespace},  # type: ignore[arg-type]
        data_dir=tmp_path / "data",
        database=database,
    )
    store = Store.open(database)
    with contextlib.closing(k8s_cluster.api_client()) as api:
        backend = KubernetesBackend(api, namespace=k8s_namespace, instance="i")
        daemon = build_daemon(settings, store, backend, timer=False)
        try:
            yield Harness(daemon, backend, store), git
        finally:
            daemon.stop(deadline=5)
            store.close()


def test_an_unschedulable_raycluster_runs_once_its_crd_is_installed(
    harness: tuple[Harness, Any], k8s_cluster: ControlPlane, k8s_namespace: str
) -> None:
    h, git = harness
    crd = CRD_DIR / "ray.io_rayclusters.yaml"
    k8s_cluster.kubectl("delete", "-f", str(crd), "--wait=true")
    try:
        git.commit("a ray cluster", {"ops/ray.yaml": RAY})
        git.push()
        h.step()
        [run] = h.runs("ray")
        assert run.status == "unschedulable"
        assert "KubeRay" in (h.store.history(run.name)[-1].message or "")

        k8s_cluster.kubectl("apply", "-f", str(crd))
        k8s_cluster.kubectl("wait", "--for=condition=Established", "crd/rayclusters.ray.io", "--timeout=60s")

        def created() -> bool:
            h.step()
            found = Client(h.backend.client.api_client).request(
                "GET", f"/apis/ray.io/v1/namespaces/{k8s_namespace}/rayclusters", verb="LIST"
            )
            return bool(found.get("items"))

        wait_for(created, timeout=DEADLINE, what="the RayCluster to be created once its CRD is installed")
        # KubeRay does not run here: play its part, and the run is running.
        Client(h.backend.client.api_client).request(
            "PATCH",
            f"/apis/ray.io/v1/namespaces/{k8s_namespace}/rayclusters/{run.name}/status",
            verb="PATCH",
            body={"status": {"state": "ready"}},
            content_type=MERGE,
        )
        wait_for(
            lambda: h.step() or h.store.run(run.name).status == "running",  # type: ignore[union-attr]
            timeout=DEADLINE,
            what="the run to be running",
        )
        assert [r.name for r in h.runs("ray")] == [run.name]  # submitted again as the same run
        reasons = [x.reason for x in h.store.history(run.name)]
        assert "Retry" in reasons, reasons
    finally:
        k8s_cluster.kubectl("apply", "-f", str(crd))
        k8s_cluster.kubectl("wait", "--for=condition=Established", "crd/rayclusters.ray.io", "--timeout=60s")


def deployments(k8s_cluster: ControlPlane, namespace: str) -> list[str]:
    found = json.loads(k8s_cluster.kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout)
    return [d["metadata"]["name"] for d in found["items"] if "deletionTimestamp" not in d["metadata"]]


def test_a_service_whose_name_a_foreign_object_holds_runs_once_it_is_removed(
    harness: tuple[Harness, Any], k8s_cluster: ControlPlane, k8s_namespace: str
) -> None:
    h, git = harness
    sha = git.commit("a service", {"ops/web.yaml": WEB})
    git.push()
    # The Service the op will get is named after the op: someone else's Service has that name.
    source = h.daemon.repos["models"].source
    source.fetch()
    loaded = load_commit(source, "models", sha)
    assert isinstance(loaded, LoadedCommit)
    [op] = [o for k, o in loaded.desired.ops.items() if k.name == "web"]
    request = RunRequest(
        run_name(op.key, op.spec_hash, sha),
        op.key,
        op.kind,
        op.spec_hash,
        op.effective,
        "commit",
        sha,
        sha,  # type: ignore[arg-type]
    )
    taken = service_name(request)
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": taken, "namespace": k8s_namespace},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "theirs"}},
    }
    Client(h.backend.client.api_client).request(
        "POST", f"/api/v1/namespaces/{k8s_namespace}/services", verb="CREATE", body=foreign
    )
    h.step()
    [failed] = h.runs("web")
    assert failed.status == "failed", failed.status
    assert "not this run's" in (h.store.history(failed.name)[-1].message or "")
    # The refused attempt leaves no Deployment running behind it.
    wait_for(lambda: deployments(k8s_cluster, k8s_namespace) == [], timeout=DEADLINE, what="no Deployment left")

    k8s_cluster.kubectl("delete", "service", taken, "-n", k8s_namespace)

    def running() -> bool:
        h.step()
        return any(r.status == "running" for r in h.runs("web"))

    wait_for(running, timeout=DEADLINE, what="a retry of the service to run")
    runs = h.runs("web")
    [live] = [r for r in runs if r.status == "running"]
    assert str(live.cause) == "retry" and live.cause_id.startswith(f"retry:{failed.name}:")
    assert deployments(k8s_cluster, k8s_namespace) == [live.name]
    service = json.loads(k8s_cluster.kubectl("get", "service", taken, "-n", k8s_namespace, "-o", "json").stdout)
    assert service["spec"]["selector"] == {"reconciler.polyaxon.io/run": live.name}
