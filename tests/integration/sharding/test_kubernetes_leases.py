"""Members and repo leases as coordination.k8s.io/v1 Leases, on the real API server.

The same rules as the database mode's tests, held by Kubernetes objects: one holder per repo
Lease (compare-and-swap on resourceVersion), `leaseTransitions` as the generation, a member dead
only once this replica has seen its Lease unchanged for `leaseDurationSeconds`, Leases free at
once when their holder leaves, and a second live process refused its identity.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.sharding import Shard, assign
from reconciler.sharding.kubernetes import ANNOTATION_REPO, LABEL_LEASE, KubernetesLeases
from tests.cluster.controlplane import ControlPlane
from tests.infra.wait import wait_until

pytestmark = pytest.mark.k8s

INSTANCE = "0b5e1a7c-7777-4c6e-9d43-5f2a6ad1c0de"
REPOS = ["models", "etl", "reports", "web"]


@pytest.fixture
def api(k8s_cluster: ControlPlane) -> Iterator[Any]:
    client = k8s_cluster.api_client()
    try:
        yield client
    finally:
        client.close()


def leases_for(
    api: Any, namespace: str, name: str, lease_seconds: float = 2.0, holder: str | None = None
) -> KubernetesLeases:
    return KubernetesLeases(
        api,
        namespace=namespace,
        instance=INSTANCE,
        identity=name,
        holder=holder or f"{name}#t",
        lease_seconds=lease_seconds,
    )


def repo_leases(cluster: ControlPlane, namespace: str) -> dict[str, dict[str, Any]]:
    items = json.loads(
        cluster.kubectl("get", "leases", "-n", namespace, "-l", f"{LABEL_LEASE}=repo", "-o", "json").stdout
    )["items"]
    return {i["metadata"]["annotations"][ANNOTATION_REPO]: i for i in items}


def test_one_holder_per_repo_lease_and_the_generation_is_lease_transitions(
    api: Any, k8s_cluster: ControlPlane, k8s_namespace: str
) -> None:
    a, b = leases_for(api, k8s_namespace, "a"), leases_for(api, k8s_namespace, "b")
    assert a.join() and b.join()
    assert a.members() == ["a", "b"]
    assert a.acquire(REPOS) == dict.fromkeys(REPOS, 0)
    assert b.acquire(REPOS) == {}  # held by a live member
    a.release({"etl": 0})
    assert b.acquire(REPOS) == {"etl": 1}
    objects = repo_leases(k8s_cluster, k8s_namespace)
    assert objects["etl"]["spec"]["holderIdentity"] == "b#t"
    assert objects["etl"]["spec"]["leaseTransitions"] == 1
    assert objects["models"]["spec"]["holderIdentity"] == "a#t"
    assert objects["models"]["metadata"]["labels"]["reconciler.polyaxon.io/instance"] == INSTANCE
    assert b.holders() == {"etl": "b", "models": "a", "reports": "a", "web": "a"}


def test_a_member_that_stops_renewing_is_dead_after_its_lease_as_observed(api: Any, k8s_namespace: str) -> None:
    a, b = leases_for(api, k8s_namespace, "a"), leases_for(api, k8s_namespace, "b")
    assert a.join() and b.join()
    assert a.acquire(REPOS) == dict.fromkeys(REPOS, 0)
    assert b.members() == ["a", "b"]  # first seen: alive for a whole lease from now
    # "a" is killed: it never renews again. b keeps renewing and looking.
    wait_until(lambda: b.join() and b.members() == ["b"], timeout=15, what="a to be seen dead")
    assert b.acquire(REPOS) == dict.fromkeys(REPOS, 1)
    # "a" comes back with the same holder (a paused process): it renews, but holds nothing.
    assert a.join()
    assert sorted(a.members()) == ["a", "b"]
    assert a.acquire(REPOS) == {}


def test_leaving_frees_the_repos_at_once_and_deletes_the_member(
    api: Any, k8s_cluster: ControlPlane, k8s_namespace: str
) -> None:
    a, b = leases_for(api, k8s_namespace, "a", lease_seconds=60), leases_for(api, k8s_namespace, "b", lease_seconds=60)
    assert a.join() and b.join()
    held = a.acquire(REPOS)
    assert b.members() == ["a", "b"]
    a.leave(held)
    assert b.members() == ["b"]
    assert b.acquire(REPOS) == dict.fromkeys(REPOS, 1)  # no lease of 60 s to wait for
    members = json.loads(
        k8s_cluster.kubectl("get", "leases", "-n", k8s_namespace, "-l", f"{LABEL_LEASE}=member", "-o", "json").stdout
    )["items"]
    assert [m["spec"]["holderIdentity"] for m in members] == ["b#t"]


def test_a_second_live_process_cannot_use_the_same_identity(api: Any, k8s_namespace: str) -> None:
    first = leases_for(api, k8s_namespace, "pod-a", holder="pod-a#first")
    second = leases_for(api, k8s_namespace, "pod-a", holder="pod-a#second")
    assert first.join()
    assert not second.join()
    # The first dies; once the second has seen its Lease unchanged for a lease, it takes over.
    wait_until(second.join, timeout=15, what="the identity to be free")
    assert not first.join()  # the first, woken up, is now the stranger


def test_three_shards_split_the_repos_and_move_only_a_dead_one_s(api: Any, k8s_namespace: str) -> None:
    repos = [f"repo-{i:02d}" for i in range(24)]
    shards = [Shard(leases_for(api, k8s_namespace, name), repos, lease_seconds=2.0) for name in ("a", "b", "c")]

    def owners(live: list[Shard]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {r: [] for r in repos}
        for s in shards:
            for r in s.owned():
                found[r].append(s.identity)
        return found

    def settled(live: list[Shard]) -> bool:
        for s in live:
            s.step()
        want = assign(repos, [s.identity for s in live])
        return owners(live) == {r: [want[r]] for r in repos}

    wait_until(lambda: settled(shards), timeout=30, what="the repos to settle over a, b, c")
    before = {r: o for r, [o] in owners(shards).items()}
    wait_until(lambda: settled(shards[:2]), timeout=30, what="a and b to take c's repos")
    assert all(owners(shards)[r] == [before[r]] for r in repos if before[r] != "c")
