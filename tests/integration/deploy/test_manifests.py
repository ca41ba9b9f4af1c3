"""The deploy manifests are accepted by a real API server, and their RBAC is least privilege."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.config import Settings
from tests.cluster.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "manifests"
SA = "system:serviceaccount:polyaxon-reconciler:polyaxon-reconciler"


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


@pytest.mark.k8s
def test_manifests_apply_and_rbac_is_least_privilege(k8s_cluster: ControlPlane) -> None:
    try:
        _check_manifests(k8s_cluster)
    finally:
        k8s_cluster.kubectl(
            "delete",
            "--wait=false",
            "--ignore-not-found",
            "-f",
            str(MANIFESTS / "rbac.yaml"),
            "-f",
            str(MANIFESTS / "namespace.yaml"),
            check=False,
        )


def _check_manifests(k8s_cluster: ControlPlane) -> None:
    # A server-side dry run of namespaced objects needs their namespace to exist.
    k8s_cluster.kubectl("apply", "-f", str(MANIFESTS / "namespace.yaml"))
    dry_run = k8s_cluster.kubectl("apply", "--dry-run=server", "-k", str(MANIFESTS), check=False)
    assert dry_run.returncode == 0, dry_run.stderr
    k8s_cluster.kubectl("apply", "-f", str(MANIFESTS / "rbac.yaml"))

    def can(verb: str, resource: str, namespace: str = "polyaxon-reconciler") -> bool:
        result = k8s_cluster.kubectl("auth", "can-i", verb, resource, f"--as={SA}", "-n", namespace, check=False)
        return result.stdout.strip() == "yes"

    for verb in ("create", "patch", "delete", "watch"):
        for resource in (
            "jobs.batch",
            "deployments.apps",
            "services",
            "tfjobs.kubeflow.org",
            "rayclusters.ray.io",
            "daskjobs.kubernetes.dask.org",
            "sparkapplications.sparkoperator.k8s.io",
        ):
            assert can(verb, resource), f"cannot {verb} {resource}"
    assert can("get", "pods/log")
    assert can("list", "customresourcedefinitions.apiextensions.k8s.io", namespace="default")
    # Least privilege: nothing outside its namespace, no secrets, no RBAC, no pods exec.
    assert not can("create", "jobs.batch", namespace="default")
    assert not can("get", "secrets")
    assert not can("create", "rolebindings.rbac.authorization.k8s.io")
    assert not can("create", "pods/exec")
    assert not can("delete", "customresourcedefinitions.apiextensions.k8s.io", namespace="default")
