"""Proof that the test control plane behaves like a cluster in the ways the reconciler relies on:
Jobs finish through the real Job controller, server-side apply detects conflicts, watches
expire with 410 Gone, Leases can be held, and CRD status lives in its subresource."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException

from tests.cluster.controlplane import CRD_DIR, FAIL_LABEL, ControlPlane
from tests.cluster.poll import wait_for

pytestmark = pytest.mark.k8s

DEADLINE = 60.0


@pytest.fixture
def api(k8s_cluster: ControlPlane) -> Iterator[k8s.ApiClient]:
    with contextlib.closing(k8s_cluster.api_client()) as client:
        yield client


def _job(name: str, *, fail: bool = False) -> dict[str, Any]:
    labels = {FAIL_LABEL: "true"} if fail else {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                },
            },
        },
    }


def _wait_job_condition(batch: k8s.BatchV1Api, ns: str, name: str, wanted: str) -> k8s.V1Job:
    def reached() -> k8s.V1Job | None:
        job = batch.read_namespaced_job_status(name, ns)
        conditions = {c.type: c.status for c in (job.status.conditions or [])}
        # Complete and Failed are final: seeing the other one means the wait can never succeed.
        other = "Failed" if wanted == "Complete" else "Complete"
        assert conditions.get(other) != "True", f"job {name} reached {other}: {job.status}"
        return job if conditions.get(wanted) == "True" else None

    result: k8s.V1Job = wait_for(reached, timeout=DEADLINE, what=f"job {ns}/{name} {wanted}")
    return result


def _job_pods(core: k8s.CoreV1Api, ns: str, name: str) -> list[k8s.V1Pod]:
    pods: list[k8s.V1Pod] = core.list_namespaced_pod(ns, label_selector=f"job-name={name}").items
    return pods


def test_job_completes_through_scheduler_kwok_and_job_controller(
    k8s_cluster: ControlPlane, api: k8s.ApiClient, k8s_namespace: str
) -> None:
    batch, core = k8s.BatchV1Api(api), k8s.CoreV1Api(api)
    batch.create_namespaced_job(k8s_namespace, _job("ok"))

    job = _wait_job_condition(batch, k8s_namespace, "ok", "Complete")

    assert job.status.succeeded == 1
    assert not job.status.failed
    (pod,) = _job_pods(core, k8s_namespace, "ok")
    assert pod.spec.node_name == k8s_cluster.fake_node  # bound by kube-scheduler
    assert pod.status.phase == "Succeeded"  # set by kwok's pod-complete stage


def test_job_with_failing_pod_fails(api: k8s.ApiClient, k8s_namespace: str) -> None:
    batch, core = k8s.BatchV1Api(api), k8s.CoreV1Api(api)
    batch.create_namespaced_job(k8s_namespace, _job("bad", fail=True))

    job = _wait_job_condition(batch, k8s_namespace, "bad", "Failed")

    assert job.status.failed == 1
    assert not job.status.succeeded
    failed = {c.type: c for c in job.status.conditions}["Failed"]
    assert failed.reason == "BackoffLimitExceeded"
    (pod,) = _job_pods(core, k8s_namespace, "bad")
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 1


def test_server_side_apply_conflict_and_force(api: k8s.ApiClient, k8s_namespace: str) -> None:
    core = k8s.CoreV1Api(api)

    def apply(manager: str, value: str, *, force: bool = False) -> k8s.V1ConfigMap:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"key": value}}
        result: k8s.V1ConfigMap = core.patch_namespaced_config_map(
            "ssa",
            k8s_namespace,
            body,
            field_manager=manager,
            force=force,
            _content_type="application/apply-patch+yaml",
        )
        return result

    apply("reconciler", "one")

    with pytest.raises(ApiException) as conflict:
        apply("someone-else", "two")
    assert conflict.value.status == 409
    assert "reconciler" in (conflict.value.body or "")
    assert core.read_namespaced_config_map("ssa", k8s_namespace).data == {"key": "one"}

    forced = apply("someone-else", "two", force=True)

    assert forced.data == {"key": "two"}
    owners = {
        entry.manager
        for entry in forced.metadata.managed_fields
        if entry.operation == "Apply" and "f:key" in str(entry.fields_v1)
    }
    assert owners == {"someone-else"}


def test_watch_from_compacted_revision_gets_410_then_relist_resumes(
    k8s_cluster: ControlPlane, api: k8s.ApiClient, k8s_namespace: str
) -> None:
    core = k8s.CoreV1Api(api)
    first = core.create_namespaced_config_map(k8s_namespace, {"metadata": {"name": "cm-0"}})
    old_rv = first.metadata.resource_version
    for i in range(1, 4):
        core.create_namespaced_config_map(k8s_namespace, {"metadata": {"name": f"cm-{i}"}})
    k8s_cluster.compact_etcd()

    with pytest.raises(ApiException) as gone:
        for _ in k8s_watch.Watch().stream(
            core.list_namespaced_config_map, k8s_namespace, resource_version=old_rv, timeout_seconds=10
        ):
            pytest.fail("a watch from a compacted resourceVersion must not deliver events")
    assert gone.value.status == 410

    # Recovery as an informer does it: relist, then watch from the list's resourceVersion.
    listing = core.list_namespaced_config_map(k8s_namespace)
    names = {cm.metadata.name for cm in listing.items}
    assert {f"cm-{i}" for i in range(4)} <= names
    core.create_namespaced_config_map(k8s_namespace, {"metadata": {"name": "cm-after"}})
    seen = []
    watcher = k8s_watch.Watch()
    # Only the test's own objects: kube-root-ca.crt is the root-CA publisher's, on its own time.
    for event in watcher.stream(
        core.list_namespaced_config_map,
        k8s_namespace,
        resource_version=listing.metadata.resource_version,
        timeout_seconds=int(DEADLINE),
    ):
        name = event["object"].metadata.name
        if name.startswith("cm-"):
            seen.append((event["type"], name))
        if name == "cm-after":
            watcher.stop()
    assert seen == [("ADDED", "cm-after")]  # nothing replayed from before the list, nothing lost


def test_lease_acquire_and_renew(api: k8s.ApiClient, k8s_namespace: str) -> None:
    coord = k8s.CoordinationV1Api(api)
    acquired_at = datetime.datetime.now(datetime.UTC)
    lease = coord.create_namespaced_lease(
        k8s_namespace,
        {
            "metadata": {"name": "reconciler-leader"},
            "spec": {
                "holderIdentity": "replica-a",
                "leaseDurationSeconds": 15,
                "acquireTime": acquired_at.isoformat(),
                "renewTime": acquired_at.isoformat(),
                "leaseTransitions": 0,
            },
        },
    )
    # A second candidate must not take a lease that exists: create is the atomic acquire.
    with pytest.raises(ApiException) as taken:
        coord.create_namespaced_lease(
            k8s_namespace,
            {"metadata": {"name": "reconciler-leader"}, "spec": {"holderIdentity": "replica-b"}},
        )
    assert taken.value.status == 409

    renewed_at = acquired_at + datetime.timedelta(seconds=5)
    lease.spec.renew_time = renewed_at
    renewed = coord.replace_namespaced_lease("reconciler-leader", k8s_namespace, lease)

    assert renewed.spec.holder_identity == "replica-a"
    assert renewed.spec.renew_time == renewed_at  # MicroTime keeps the microseconds
    assert renewed.spec.renew_time > renewed.spec.acquire_time
    assert int(renewed.metadata.resource_version) > int(lease.metadata.resource_version)
    # A renewal based on the stale copy loses the optimistic-concurrency race.
    lease.spec.holder_identity = "replica-b"
    with pytest.raises(ApiException) as stale:
        coord.replace_namespaced_lease("reconciler-leader", k8s_namespace, lease)
    assert stale.value.status == 409


def test_all_operator_crds_are_established(api: k8s.ApiClient) -> None:
    ext = k8s.ApiextensionsV1Api(api)
    expected = {p.stem.split("_", 1)[1] + "." + p.stem.split("_", 1)[0] for p in CRD_DIR.glob("*.yaml")}
    installed = {
        crd.metadata.name: crd for crd in ext.list_custom_resource_definition().items if crd.metadata.name in expected
    }
    assert set(installed) == expected
    assert len(expected) == 11
    for crd in installed.values():
        conditions = {c.type: c.status for c in crd.status.conditions}
        assert conditions["Established"] == "True", crd.metadata.name
        (version,) = crd.spec.versions
        assert version.subresources.status is not None, crd.metadata.name


def test_custom_resource_status_subresource(k8s_cluster: ControlPlane, api: k8s.ApiClient, k8s_namespace: str) -> None:
    custom = k8s.CustomObjectsApi(api)
    group, version, plural = "kubeflow.org", "v1", "tfjobs"
    custom.create_namespaced_custom_object(
        group,
        version,
        k8s_namespace,
        plural,
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "TFJob",
            "metadata": {"name": "train"},
            "spec": {"tfReplicaSpecs": {"Worker": {"replicas": 2}}},
            # Ignored: with the status subresource on, the main endpoint does not write status.
            "status": {"conditions": [{"type": "Succeeded", "status": "True"}]},
        },
    )
    created = custom.get_namespaced_custom_object(group, version, k8s_namespace, plural, "train")
    assert "status" not in created or not created["status"]

    status = {
        "conditions": [{"type": "Running", "status": "True", "reason": "TFJobRunning"}],
        "replicaStatuses": {"Worker": {"active": 2}},
    }
    custom.patch_namespaced_custom_object_status(group, version, k8s_namespace, plural, "train", {"status": status})

    read = custom.get_namespaced_custom_object(group, version, k8s_namespace, plural, "train")
    assert read["status"] == status
    assert read["spec"] == {"tfReplicaSpecs": {"Worker": {"replicas": 2}}}
    table = k8s_cluster.kubectl("get", "tfjobs", "-n", k8s_namespace).stdout.split()
    assert table[:3] == ["NAME", "STATE", "AGE"]
    assert table[3:5] == ["train", "Running"]  # printer column from the last condition
