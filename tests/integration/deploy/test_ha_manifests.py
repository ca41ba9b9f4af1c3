"""The manifests deploy replicas that share the repos, with least privilege on Leases.

The lease permissions are proven on the real API server with a `kubectl auth can-i` matrix:
every verb the shard uses on Leases is allowed in the daemon's namespace, and nothing else about
Leases is (no watch, no patch, no other namespace, nothing cluster-wide). The rest of the RBAC
matrix lives with `test_manifests.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.config import Settings
from tests.cluster.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "manifests"
HOME = "polyaxon-reconciler"

# Every call reconciler/sharding/kubernetes.py makes on Leases.
USED = ("get", "list", "create", "update", "delete")
NOT_USED = ("watch", "patch", "deletecollection")


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def test_the_config_shares_the_repos_over_postgresql() -> None:
    [config] = docs("config.yaml")
    settings = Settings(**yaml.safe_load(config["data"]["reconciler.yaml"]))
    assert settings.sharding is not None
    assert (settings.sharding.mode, settings.sharding.lease_seconds, settings.sharding.identity) == (
        "kubernetes",
        15,
        None,
    )
    assert settings.database.startswith("postgresql")
    assert "@" in settings.database and ":" not in settings.database.split("//")[1].split("@")[0]  # no password


def test_three_replicas_spread_with_a_budget_and_no_shared_volume() -> None:
    deployment = next(d for d in docs("deployment.yaml") if d["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    [term] = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
    # A ReadWriteOnce claim cannot follow three pods to three nodes: the data volume is per pod.
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])
    assert not [d for d in docs("deployment.yaml") if d["kind"] == "PersistentVolumeClaim"]
    [pdb] = docs("pdb.yaml")
    assert pdb["kind"] == "PodDisruptionBudget" and pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert {"leases.yaml", "pdb.yaml"} <= set(kustomization["resources"])


def test_lease_rights_are_a_role_in_the_daemon_s_namespace() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs("leases.yaml")}
    assert kinds == {("Role", "polyaxon-reconciler-leases"), ("RoleBinding", "polyaxon-reconciler-leases")}
    [role] = [d for d in docs("leases.yaml") if d["kind"] == "Role"]
    assert role["metadata"]["namespace"] == HOME
    assert role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": list(USED)}]


@pytest.mark.k8s
def test_lease_rbac_matrix_on_the_api_server(k8s_cluster: ControlPlane, k8s_namespace: str, tmp_path: Path) -> None:
    """The service account, the Role and its binding, moved into a namespace of this test."""
    moved = []
    for name in ("rbac.yaml", "leases.yaml"):
        for doc in docs(name):
            if doc["kind"] in ("ServiceAccount", "Role", "RoleBinding") and doc["metadata"].get("namespace") == HOME:
                text = yaml.safe_dump(doc).replace(f"namespace: {HOME}", f"namespace: {k8s_namespace}")
                moved.append(text)
    path = tmp_path / "rbac.yaml"
    path.write_text("---\n".join(moved))
    k8s_cluster.kubectl("apply", "-f", str(path))
    user = f"system:serviceaccount:{k8s_namespace}:polyaxon-reconciler"

    def can(verb: str, resource: str, *where: str) -> bool:
        found = k8s_cluster.kubectl("auth", "can-i", verb, resource, f"--as={user}", *where, check=False)
        return found.stdout.strip() == "yes"

    for verb in USED:
        assert can(verb, "leases.coordination.k8s.io", "-n", k8s_namespace), f"cannot {verb} leases"
    for verb in NOT_USED:
        assert not can(verb, "leases.coordination.k8s.io", "-n", k8s_namespace), f"may {verb} leases"
    for verb in USED:
        assert not can(verb, "leases.coordination.k8s.io", "-n", "default"), f"may {verb} leases elsewhere"
        assert not can(verb, "leases.coordination.k8s.io", "-n", "kube-node-lease"), f"may {verb} node leases"
    assert not can("list", "leases.coordination.k8s.io", "--all-namespaces")
    # Nothing else came with the Leases.
    assert not can("get", "secrets", "-n", k8s_namespace)
    assert not can("update", "configmaps", "-n", k8s_namespace)
