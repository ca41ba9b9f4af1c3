"""Drift of a service on the real control plane, through the production daemon (wiring.build_daemon):
`kubectl scale` is healed and recorded in the run's history (a `DriftCorrected` row, the run stays
running) and counted (`reconciler_drift_corrected_total{kind}`); with `self_heal: false` it is
reported instead (a `warning` row, reason `Drift`, in the run's history; the object stays edited).

Before: a scale was neither healed nor reported (its managedFields entry names the `scale`
subresource, which the drift check skipped), and a healed drift showed in the log only.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from reconciler.backends.kubernetes import KubernetesBackend
from reconciler.config import Settings
from reconciler.daemon import Daemon
from reconciler.tracking import Store, upgrade
from reconciler.wiring import build_daemon
from tests.cluster.controlplane import ControlPlane
from tests.cluster.poll import wait_for
from tests.e2e.harness import metric
from tests.infra.git_server import GitRepoFactory

pytestmark = pytest.mark.k8s

SERVICE = """version: 1.1
kind: operation
name: web
component:
  run: {kind: service, ports: [8080], replicas: 2, container: {image: nginx}}
"""


def pump(daemon: Daemon, backend: KubernetesBackend) -> None:
    """What the daemon's observer thread does, one batch at a time (the test decides when)."""
    for transition in backend.observe(timeout=0.2):
        daemon.record_transition(transition)


@pytest.mark.parametrize("self_heal", [True, False])
def test_kubectl_scale_is_healed_and_recorded_or_reported(
    k8s_cluster: ControlPlane, k8s_namespace: str, git_repo_factory: GitRepoFactory, tmp_path: Path, self_heal: bool
) -> None:
    config = "" if self_heal else "self_heal: false\n"
    git = git_repo_factory.create("models", {".polyaxon-reconciler.yaml": config, "ops/web.yaml": SERVICE})
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
            assert daemon.reconcile_repo("models").converged
            [(run, _)] = store.list_runs(repo="models")

            def status() -> str:
                pump(daemon, backend)
                found = store.run(run.name)
                assert found is not None
                return str(found.status)

            wait_for(lambda: status() == "running", timeout=60, what="the service to run")
            deployment = run.name
            k8s_cluster.kubectl("scale", f"deployment/{deployment}", "--replicas=5", "-n", k8s_namespace)
            if self_heal:
                wait_for(
                    lambda: status() and any(h.reason == "DriftCorrected" for h in store.history(run.name)),
                    timeout=60,
                    what="the healed drift in the run's history",
                )
                row = [h for h in store.history(run.name) if h.reason == "DriftCorrected"][-1]
                assert row.status == "running" and "kubectl" in (row.message or ""), row
                assert status() == "running"
                counted = metric(
                    daemon.metrics.exposition().decode(), "reconciler_drift_corrected_total", kind="service"
                )
                assert counted == 1
            else:
                wait_for(
                    lambda: status() and any(h.reason == "Drift" for h in store.history(run.name)),
                    timeout=60,
                    what="the drift reported in the run's history",
                )
                row = [h for h in store.history(run.name) if h.reason == "Drift"][-1]
                assert row.status == "warning" and "kubectl" in (row.message or ""), row
                live = k8s_cluster.kubectl(
                    "get", f"deployment/{deployment}", "-n", k8s_namespace, "-o", "jsonpath={.spec.replicas}"
                )
                assert live.stdout == "5"  # left as edited
                text = daemon.metrics.exposition().decode()
                assert metric(text, "reconciler_drift_corrected_total", kind="service") == 0
        finally:
            daemon.stop(deadline=5)
            store.close()
