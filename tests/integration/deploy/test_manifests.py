"""The deploy manifests on a real API server: they apply, the pod schedules without a StorageClass,
and the RBAC grants what the code uses and nothing more (a `kubectl auth can-i` matrix over the
kinds the backend renders, then the backend itself run with the service account's token)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from reconciler.backends.kubernetes import KubernetesBackend
from reconciler.backends.kubernetes.resources import RESOURCES, Resource
from reconciler.config import Settings
from tests.cluster.controlplane import ControlPlane
from tests.cluster.poll import wait_for
from tests.integration.backends.test_kubernetes_backend import collect, job_run, service_run

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "manifests"
NAMESPACE = "polyaxon-reconciler"
SA = f"system:serviceaccount:{NAMESPACE}:polyaxon-reconciler"


def test_the_configmap_holds_valid_settings() -> None:
    docs = list(yaml.safe_load_all((MANIFESTS / "config.yaml").read_text()))
    settings = Settings(**yaml.safe_load(docs[0]["data"]["reconciler.yaml"]))
    assert settings.backend == "kubernetes" and settings.kubernetes.in_cluster
    assert all(r.forge is None or r.forge.token_file is not None for r in settings.repos)


def test_the_dockerfile_copies_what_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


@pytest.fixture(scope="module")
def shipped_namespace(k8s_cluster: ControlPlane) -> Iterator[str]:
    """The manifests' namespace, for this module's tests; removed with the RBAC at its end."""
    k8s_cluster.kubectl("apply", "-f", str(MANIFESTS / "namespace.yaml"))
    try:
        yield NAMESPACE
    finally:
        k8s_cluster.kubectl(
            "delete", "--wait=false", "--ignore-not-found", "-f", str(MANIFESTS / "rbac.yaml"),
            "-f", str(MANIFESTS / "leases.yaml"), "-f", str(MANIFESTS / "namespace.yaml"), check=False,
        )  # fmt: skip


@pytest.mark.k8s
def test_manifests_apply_and_the_pod_schedules_without_a_storage_class(
    k8s_cluster: ControlPlane, shipped_namespace: str
) -> None:
    """The test cluster has no StorageClass, like many: the shipped PVC stayed Pending and the
    pod unschedulable. The state volume is an emptyDir now (PostgreSQL for anything real)."""
    try:
        dry_run = k8s_cluster.kubectl("apply", "--dry-run=server", "-k", str(MANIFESTS), check=False)
        assert dry_run.returncode == 0, dry_run.stderr
        k8s_cluster.kubectl("apply", "-k", str(MANIFESTS))
        docs = [d for f in MANIFESTS.glob("*.yaml") for d in yaml.safe_load_all(f.read_text()) if d]
        assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]

        def scheduled() -> bool:
            pods = json.loads(
                k8s_cluster.kubectl(
                    "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=polyaxon-reconciler", "-o", "json"
                ).stdout
            )["items"]
            return any(p["spec"].get("nodeName") for p in pods)

        wait_for(scheduled, timeout=60, what="the reconciler's pod to be scheduled")
    finally:
        k8s_cluster.kubectl(
            "delete", "--wait=false", "--ignore-not-found", "-f", str(MANIFESTS / "deployment.yaml"),
            "-f", str(MANIFESTS / "config.yaml"), check=False,
        )  # fmt: skip


# What the Kubernetes backend does, kind by kind: informers list and watch, adoption and apply read
# one object, create, server-side apply and the stop annotation patch, delete. Nothing else.
USED_VERBS = ("get", "list", "watch", "create", "patch", "delete")
# What the replicas' leases do (reconciler/sharding/kubernetes.py): list the members, read one,
# create, renew by a replace (PUT: the resourceVersion is the compare-and-swap), delete on leaving.
LEASE_VERBS = ("get", "list", "create", "update", "delete")


def resource_name(resource: Resource) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


@pytest.mark.k8s
def test_rbac_grants_what_the_code_uses_and_nothing_more(k8s_cluster: ControlPlane, shipped_namespace: str) -> None:
    extra = f"t-extra-{uuid.uuid4().hex[:8]}"
    try:
        # The runs' rights alone first: leases.yaml is what high availability adds, and another
        # test of this module may have applied the whole kustomization.
        k8s_cluster.kubectl("delete", "--ignore-not-found", "-f", str(MANIFESTS / "leases.yaml"))
        k8s_cluster.kubectl("apply", "-f", str(MANIFESTS / "rbac.yaml"))
        k8s_cluster.kubectl("create", "namespace", extra)

        def can(verb: str, resource: str, namespace: str = NAMESPACE) -> bool:
            resource, _, sub = resource.partition("/")
            extra = [f"--subresource={sub}"] if sub else []
            result = k8s_cluster.kubectl(
                "auth", "can-i", verb, resource, *extra, f"--as={SA}", "-n", namespace, check=False
            )
            return result.stdout.strip() == "yes"

        matrix = {
            (verb, resource_name(r)): can(verb, resource_name(r)) for r in RESOURCES for verb in (*USED_VERBS, "update")
        }
        assert [k for k, allowed in matrix.items() if allowed != (k[0] != "update")] == []
        assert can("list", "pods") and can("get", "pods/log")
        for verb, resource in [
            ("get", "pods"),
            ("watch", "pods"),
            ("create", "pods"),
            ("create", "pods/exec"),
            ("get", "secrets"),
            ("list", "configmaps"),
            ("create", "rolebindings.rbac.authorization.k8s.io"),
            ("list", "customresourcedefinitions.apiextensions.k8s.io"),  # discovery says what is served
            ("get", "leases.coordination.k8s.io"),  # leases come with leases.yaml, below
            ("update", "jobs.batch"),  # server-side apply is a patch
        ]:
            assert not can(verb, resource), f"may {verb} {resource}"
        # leases.yaml grants the lease verbs the code uses, in the reconciler's namespace only.
        k8s_cluster.kubectl("apply", "-f", str(MANIFESTS / "leases.yaml"))
        leases = "leases.coordination.k8s.io"
        assert [v for v in (*LEASE_VERBS, "watch", "patch") if can(v, leases) != (v in LEASE_VERBS)] == []
        assert not any(can(verb, leases, namespace) for verb in LEASE_VERBS for namespace in ("default", extra))
        # Nothing in another namespace until it is bound there, as the README says for each of
        # `kubernetes.namespaces`...
        assert not any(can(verb, "jobs.batch", namespace) for verb in USED_VERBS for namespace in ("default", extra))
        k8s_cluster.kubectl(
            "create", "rolebinding", "polyaxon-reconciler-runs", "--clusterrole=polyaxon-reconciler-runs",
            f"--serviceaccount={NAMESPACE}:polyaxon-reconciler", "-n", extra,
        )  # fmt: skip
        assert all(can(verb, "jobs.batch", extra) for verb in USED_VERBS)
        assert not can("create", "jobs.batch", "default")

        # ...and the backend works with exactly these rights, in both namespaces.
        token = k8s_cluster.kubectl("create", "token", "polyaxon-reconciler", "-n", NAMESPACE).stdout.strip()
        _run_the_backend_as_the_service_account(k8s_cluster, token, (NAMESPACE, extra))
    finally:
        k8s_cluster.kubectl("delete", "namespace", extra, "--wait=false", "--ignore-not-found", check=False)


def _run_the_backend_as_the_service_account(k8s_cluster: ControlPlane, token: str, namespaces: tuple[str, ...]) -> None:
    config = yaml.safe_load(k8s_cluster.kubeconfig.read_text())
    configuration = k8s.Configuration()
    configuration.host = k8s_cluster.server
    configuration.ssl_ca_cert = config["clusters"][0]["cluster"]["certificate-authority"]
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with contextlib.closing(k8s.ApiClient(configuration)) as api:
        backend = KubernetesBackend(api, namespace=namespaces, instance="rbac")  # every kind listed and watched
        try:
            assert backend.ready() is None
            assert backend.missing_apis() == []
            for i, namespace in enumerate(namespaces):
                run = job_run(namespace, f"as-sa-{i}")
                backend.submit(run)
                assert collect(backend, run.name, {"succeeded", "failed"})[-1].status == "succeeded"
                assert isinstance(backend.logs(run.name), str)
                backend.delete(run.name)
            service = service_run(namespaces[0], "as-sa-web", replicas=1)
            backend.apply(service)
            collect(backend, service.name, {"running"})
            backend.stop(service.name)
            collect(backend, service.name, {"stopped"})
        finally:
            backend.close()
