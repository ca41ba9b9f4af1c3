"""The Kubernetes backend against the real control plane (tests/cluster): kwok runs the pods,
the Job and Deployment controllers are real, and the operators' status is written by the tests
through the status subresource, since no operator runs here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient

from reconciler.backends.base import PermanentBackendError
from reconciler.backends.kubernetes import ConflictError, KubernetesBackend
from reconciler.backends.kubernetes.client import APPLY, MERGE, ApiError, Client
from reconciler.backends.kubernetes.resources import resource_for
from reconciler.model import Cause, OpKey, RunRequest, StatusTransition, spec_hash
from reconciler.render import RenderOptions, render
from tests.cluster.controlplane import CRD_DIR, FAIL_LABEL, ControlPlane
from tests.cluster.poll import wait_for
from tests.unit.render.test_golden import CASES, run_for

pytestmark = pytest.mark.k8s

DEADLINE = 60.0


@pytest.fixture
def api(k8s_cluster: ControlPlane) -> Iterator[ApiClient]:
    with contextlib.closing(k8s_cluster.api_client()) as client:
        yield client


@pytest.fixture
def backend(api: ApiClient, k8s_namespace: str) -> Iterator[KubernetesBackend]:
    b = KubernetesBackend(api, namespace=k8s_namespace)
    try:
        yield b
    finally:
        b.close()


def make_run(namespace: str, name: str, run: dict[str, Any], **effective: Any) -> RunRequest:
    spec = {"version": 1.1, "run": run, **effective}
    return RunRequest(
        name=name,
        op=OpKey("repo", f"{name}.yaml", name),
        kind=run["kind"],
        spec_hash=spec_hash(spec),
        effective=spec,
        cause=Cause.COMMIT,
        cause_id="c1",
        commit="c1",
        namespace=namespace,
    )


def job_run(namespace: str, name: str, *, fail: bool = False) -> RunRequest:
    labels = {FAIL_LABEL: "true"} if fail else {}
    return make_run(
        namespace,
        name,
        {"kind": "job", "environment": {"labels": labels}, "container": {"image": "busybox", "command": ["true"]}},
    )


def service_run(namespace: str, name: str = "web", replicas: int = 2) -> RunRequest:
    return make_run(
        namespace,
        name,
        {"kind": "service", "ports": [8080], "replicas": replicas, "container": {"image": "nginx"}},
    )


def collect(
    backend: KubernetesBackend, run: str, until: set[str], timeout: float = DEADLINE, *, note: bool = False
) -> list[StatusTransition]:
    """Observe until `run` reaches one of `until` (with `note`: until a note while in one of
    them); every transition of that run, in order."""
    seen: list[StatusTransition] = []

    def reached() -> bool:
        for t in backend.observe(timeout=0.5):
            if t.run == run:
                seen.append(t)
                if t.status in until and t.note == note:
                    return True
        return False

    wait_for(reached, timeout=timeout, what=f"{run} to reach {until}; saw {[t.status for t in seen]}")
    return seen


def get(api: ApiClient, manifest: dict[str, Any]) -> dict[str, Any] | None:
    meta = manifest["metadata"]
    try:
        return Client(api).request("GET", resource_for(manifest).item(meta["namespace"], meta["name"]), verb="GET")
    except ApiError as e:
        if e.status == 404:
            return None
        raise


# --- jobs through kwok -------------------------------------------------------------------------


def test_job_succeeds(backend: KubernetesBackend, k8s_namespace: str) -> None:
    run = job_run(k8s_namespace, "ok-job")
    assert backend.submit(run) == f"{k8s_namespace}/Job/ok-job"
    seen = collect(backend, "ok-job", {"succeeded", "failed"})
    assert seen[-1].status == "succeeded"
    assert seen[0].status in ("scheduled", "starting", "running")


def test_job_fails_with_the_reason(backend: KubernetesBackend, k8s_namespace: str) -> None:
    run = job_run(k8s_namespace, "bad-job", fail=True)
    backend.submit(run)
    seen = collect(backend, "bad-job", {"succeeded", "failed"})
    assert seen[-1].status == "failed"
    assert seen[-1].reason == "BackoffLimitExceeded"


def test_a_finished_job_is_deleted_after_its_ttl_and_its_run_stays_succeeded(
    api: ApiClient, k8s_namespace: str
) -> None:
    """Without a TTL a per-minute cron left 30 Jobs in 16 minutes; the daemon's default TTL
    (`kubernetes.job_ttl_seconds`) lets the Job controller delete finished ones."""
    backend = KubernetesBackend(api, namespace=k8s_namespace, render_options=RenderOptions(job_ttl_seconds=1))
    try:
        run = job_run(k8s_namespace, "short-lived")
        (job,) = render(run, backend.render_options)
        assert job["spec"]["ttlSecondsAfterFinished"] == 1
        backend.submit(run)
        assert collect(backend, run.name, {"succeeded", "failed"})[-1].status == "succeeded"
        wait_for(lambda: get(api, job) is None, timeout=DEADLINE, what="the finished Job to be deleted by its TTL")
        later = [t for t in backend.observe(timeout=1.0) if t.run == run.name]
        assert [t.status for t in later] in ([], ["succeeded"]), later  # never stopped or unknown
    finally:
        backend.close()


def test_stop_moves_through_stopping_to_stopped(backend: KubernetesBackend, k8s_namespace: str) -> None:
    run = make_run(k8s_namespace, "stop-me", {"kind": "job", "container": {"image": "busybox"}})
    backend.submit(run)
    collect(backend, "stop-me", {"scheduled", "starting", "running", "succeeded"})
    backend.stop("stop-me")
    seen = collect(backend, "stop-me", {"stopped"})
    assert [t.status for t in seen][-2:] == ["stopping", "stopped"]
    assert seen[-1].reason == "StoppedByReconciler"


# --- distributed kinds: created, status driven through the subresource ---------------------------

STATUS_STEPS: dict[str, list[tuple[dict[str, Any], str]]] = {
    "kubeflow": [
        (
            {"conditions": [{"type": "Created", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
            "scheduled",
        ),
        (
            {
                "conditions": [
                    {"type": "Created", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "Running", "status": "True", "lastTransitionTime": "2026-01-01T00:01:00Z"},
                ]
            },
            "running",
        ),
        (
            {
                "conditions": [
                    {"type": "Running", "status": "False", "lastTransitionTime": "2026-01-01T00:02:00Z"},
                    {
                        "type": "Succeeded",
                        "status": "True",
                        "lastTransitionTime": "2026-01-01T00:02:00Z",
                        "reason": "JobSucceeded",
                    },
                ]
            },
            "succeeded",
        ),
    ],
    "RayJob": [
        ({"jobDeploymentStatus": "Initializing"}, "starting"),
        ({"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}, "running"),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "FAILED", "message": "exit 1"}, "failed"),
    ],
    "RayCluster": [({"state": "ready"}, "running"), ({"state": "failed"}, "failed")],
    "DaskJob": [({"jobStatus": "Running"}, "running"), ({"jobStatus": "Successful"}, "succeeded")],
    "DaskCluster": [({"phase": "Pending"}, "starting"), ({"phase": "Running"}, "running")],
    "SparkApplication": [
        ({"applicationState": {"state": "RUNNING"}}, "running"),
        ({"applicationState": {"state": "COMPLETED"}}, "succeeded"),
    ],
}
DISTRIBUTED = [
    "tfjob",
    "pytorchjob",
    "mxjob",
    "xgbjob",
    "mpijob",
    "rayjob",
    "raycluster",
    "daskjob",
    "daskcluster",
    "sparkjob",
]


@pytest.mark.parametrize("kind", DISTRIBUTED)
def test_distributed_kind_is_created_and_its_status_followed(
    backend: KubernetesBackend, api: ApiClient, k8s_namespace: str, kind: str
) -> None:
    run = run_for(CASES / f"{kind}.yaml", namespace=k8s_namespace)
    manifests = render(run)
    primary = manifests[0]
    backend.submit(run)
    for manifest in manifests:
        live = get(api, manifest)
        assert live is not None, f"{manifest['kind']} was not created"
        assert live["spec"] == manifest["spec"]
    steps = STATUS_STEPS.get(primary["kind"], STATUS_STEPS["kubeflow"])
    client = Client(api)
    path = resource_for(primary).item(k8s_namespace, run.name) + "/status"
    for status, expected in steps:
        client.request("PATCH", path, verb="PATCH", body={"status": status}, content_type=MERGE)
        seen = collect(backend, run.name, {expected})
        assert seen[-1].status == expected


# --- services: converge and self-heal ------------------------------------------------------------


def test_service_converges_and_heals_deletion_and_edits(
    backend: KubernetesBackend, api: ApiClient, k8s_namespace: str
) -> None:
    run = service_run(k8s_namespace)
    deployment, service = render(run)
    backend.apply(run)
    collect(backend, "web", {"running"})  # kwok makes the pods ready, the controller the Deployment
    assert get(api, service) is not None

    client = Client(api)
    path = resource_for(deployment).item(k8s_namespace, "web")
    uid = get(api, deployment)["metadata"]["uid"]  # type: ignore[index]
    client.request("DELETE", path, verb="DELETE")

    def recreated() -> bool:
        list(backend.observe(timeout=0.2))
        live = get(api, deployment)
        return live is not None and live["metadata"]["uid"] != uid

    wait_for(recreated, timeout=DEADLINE, what="the deleted Deployment to be re-applied")
    drifts = backend.drifts()
    assert [(d.kind, d.change, d.healed) for d in drifts] == [("Deployment", "deleted", True)]

    # Someone scales it by hand: our replicas win back.
    client.request(
        "PATCH",
        path,
        verb="PATCH",
        query={"fieldManager": "someone"},
        body={"spec": {"replicas": 5}},
        content_type=MERGE,
    )

    def scaled_back() -> bool:
        list(backend.observe(timeout=0.2))
        live = get(api, deployment)
        return live is not None and live["spec"]["replicas"] == 2

    wait_for(scaled_back, timeout=DEADLINE, what="the hand-edited replicas to be re-applied")
    assert any(d.change.startswith("edited") and d.healed for d in backend.drifts())


@pytest.mark.parametrize("self_heal", [True, False])
def test_kubectl_scale_is_drift_healed_or_reported(
    k8s_cluster: ControlPlane, api: ApiClient, k8s_namespace: str, self_heal: bool
) -> None:
    """`kubectl scale` writes through the scale subresource; its managedFields entry carries
    `subresource: scale`, which the drift check used to skip: neither healed nor reported."""
    backend = KubernetesBackend(api, namespace=k8s_namespace, self_heal=self_heal)
    try:
        run = service_run(k8s_namespace, "scaled")
        deployment, _ = render(run)
        backend.apply(run)
        collect(backend, "scaled", {"running"})
        k8s_cluster.kubectl("scale", "deployment/scaled", "--replicas=5", "-n", k8s_namespace)
        if self_heal:
            seen = collect(backend, "scaled", {"running"}, note=True)
            assert seen[-1].note and seen[-1].reason == "DriftCorrected", seen
            assert "Deployment" in seen[-1].message and "re-applied" in seen[-1].message
            wait_for(
                lambda: get(api, deployment)["spec"]["replicas"] == 2,  # type: ignore[index]
                timeout=DEADLINE,
                what="the scaled replicas to be re-applied",
            )
            # The forced re-apply took the field back: kubectl's entry is gone, so nothing loops.
            managers = [e["manager"] for e in get(api, deployment)["metadata"]["managedFields"]]  # type: ignore[index]
            assert "kubectl" not in managers, managers
        else:
            seen = collect(backend, "scaled", {"warning"})
            assert seen[-1].reason == "Drift" and "kubectl" in seen[-1].message, seen[-1]
            assert get(api, deployment)["spec"]["replicas"] == 5  # type: ignore[index]
        assert [(d.change.split(" ")[0], d.healed) for d in backend.drifts()] == [("edited", self_heal)]
    finally:
        backend.close()


def test_the_ops_service_keeps_its_name_and_follows_the_ops_current_run(
    backend: KubernetesBackend, api: ApiClient, k8s_namespace: str
) -> None:
    """A new run of the op (here a retry) takes the op's Service over: same name (same DNS name
    for clients), selecting the new run's pods; removing the old run leaves it, removing the
    current one removes it."""
    first = service_run(k8s_namespace, "web-a", replicas=1)
    backend.submit(first)
    _, service = render(first)
    assert service["metadata"]["name"] != "web-a"
    created = get(api, service)
    assert created is not None and created["spec"]["selector"] == {"reconciler.polyaxon.io/run": "web-a"}
    second = replace(first, name="web-b", cause=Cause.RETRY, cause_id="retry:web-a:1")
    backend.submit(second)
    taken = get(api, service)
    assert taken is not None and taken["metadata"]["uid"] == created["metadata"]["uid"]
    assert taken["spec"]["selector"] == {"reconciler.polyaxon.io/run": "web-b"}
    assert taken["metadata"]["labels"]["reconciler.polyaxon.io/run"] == "web-b"
    wait_for(
        lambda: {o["kind"] for _, o in backend._objects_of("web-a")} <= {"Deployment"},
        timeout=DEADLINE,
        what="the cache to show the Service as web-b's",
    )
    backend.delete("web-a")
    assert get(api, service) is not None
    backend.delete("web-b")
    wait_for(lambda: get(api, service) is None, timeout=DEADLINE, what="the Service to go with its run")


def test_the_cache_keeps_who_wrote_each_part_not_the_field_sets(
    backend: KubernetesBackend, api: ApiClient, k8s_namespace: str
) -> None:
    """The informer's cache holds every object of ours (a Job per run), so it drops the
    field-by-field sets of managedFields (about half of a cached Job's memory) and keeps, per
    entry, the manager, its time and the top-level keys: what drift detection reads (the
    kubectl scale and hand-edit tests above show it still sees edits)."""
    run = job_run(k8s_namespace, "slim")
    [job] = render(run)
    backend.submit(run)
    informer = backend.informer(resource_for(job).key, k8s_namespace)
    name = job["metadata"]["name"]

    def same_version() -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The cached Job and the API server's, once the cache has the server's version (the Job
        controller and kwok keep writing its status meanwhile)."""
        list(backend.observe(timeout=0.2))
        cached, live = informer.get(k8s_namespace, name), get(api, job)
        if cached is None or live is None:
            return None
        version = cached["metadata"].get("resourceVersion")
        return (cached, live) if version == live["metadata"]["resourceVersion"] else None

    cached, live = wait_for(same_version, timeout=DEADLINE, what="the cache to hold the server's Job")
    kept = [(e["manager"], e.get("time"), e["fieldsV1"]) for e in cached["metadata"]["managedFields"]]
    sent = [(e["manager"], e.get("time"), e["fieldsV1"]) for e in live["metadata"]["managedFields"]]
    assert any(fields["f:spec"] for _, _, fields in sent if "f:spec" in fields), "the server keeps the sets"
    assert kept == [(m, t, {key: {} for key in fields}) for m, t, fields in sent]
    assert cached["spec"]["template"] == live["spec"]["template"]


def test_drift_is_reported_when_self_heal_is_off(api: ApiClient, k8s_namespace: str) -> None:
    backend = KubernetesBackend(api, namespace=k8s_namespace, self_heal=False)
    try:
        run = service_run(k8s_namespace, "manual")
        deployment, _ = render(run)
        backend.apply(run)
        Client(api).request("DELETE", resource_for(deployment).item(k8s_namespace, "manual"), verb="DELETE")
        seen = collect(backend, "manual", {"warning"})
        assert seen[-1].reason == "Drift" and "deleted" in seen[-1].message
        assert get(api, deployment) is None
        assert [(d.change, d.healed) for d in backend.drifts()] == [("deleted", False)]
    finally:
        backend.close()


# --- idempotence, adoption, conflicts ------------------------------------------------------------


def test_adopts_what_a_crash_left_between_create_and_record(api: ApiClient, k8s_namespace: str) -> None:
    run = job_run(k8s_namespace, "crashed")
    (job,) = render(run)
    created = Client(api).request("POST", resource_for(job).collection(k8s_namespace), verb="CREATE", body=job)
    # A new process (after the crash) submits the same run again.
    backend = KubernetesBackend(api, namespace=k8s_namespace)
    try:
        assert backend.submit(run) == f"{k8s_namespace}/Job/crashed"
        assert get(api, job)["metadata"]["uid"] == created["metadata"]["uid"]  # type: ignore[index]
        assert backend.client.calls["CREATE"] == 0  # found in the cache: nothing to create
    finally:
        backend.close()


def test_create_race_409_adopts_ours(backend: KubernetesBackend, api: ApiClient, k8s_namespace: str) -> None:
    run = job_run(k8s_namespace, "racy")
    (job,) = render(run)
    # Created behind the cache's back, just before our create: the create gets 409.
    backend.informer(("batch/v1", "Job")).stop()
    Client(api).request("POST", resource_for(job).collection(k8s_namespace), verb="CREATE", body=job)
    assert backend.submit(run) == f"{k8s_namespace}/Job/racy"
    assert backend.client.calls["CREATE"] == 1 and backend.client.calls["GET"] == 1


def test_an_object_that_is_not_ours_is_never_touched(
    backend: KubernetesBackend, api: ApiClient, k8s_namespace: str
) -> None:
    run = job_run(k8s_namespace, "taken")
    (job,) = render(run)
    # Someone else's Job of the same name (a Job without labels takes its pod template's, so
    # the template must be theirs too).
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    foreign = {**job, "metadata": {"name": "taken", "namespace": k8s_namespace}, "spec": {"template": template}}
    Client(api).request("POST", resource_for(job).collection(k8s_namespace), verb="CREATE", body=foreign)
    with pytest.raises(PermanentBackendError, match="not this run's"):
        backend.submit(run)
    svc = service_run(k8s_namespace, "taken-svc")
    deployment, _ = render(svc)
    Client(api).request(
        "POST",
        resource_for(deployment).collection(k8s_namespace),
        verb="CREATE",
        body={**deployment, "metadata": {"name": "taken-svc", "namespace": k8s_namespace}},
    )
    with pytest.raises(PermanentBackendError, match="not managed by this reconciler"):
        backend.apply(svc)
    assert "labels" not in (get(api, deployment) or {}).get("metadata", {})


def test_apply_conflict_is_reported_not_forced_unless_configured(
    backend: KubernetesBackend, api: ApiClient, k8s_namespace: str
) -> None:
    run = service_run(k8s_namespace, "contested")
    deployment, _ = render(run)
    backend.apply(run)
    path = resource_for(deployment).item(k8s_namespace, "contested")
    Client(api).request(
        "PATCH",
        path,
        verb="APPLY",
        query={"fieldManager": "other-team", "force": True},
        body={
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "contested"},
            "spec": {"replicas": 4},
        },
        content_type=APPLY,
    )
    changed = replace(run, effective={**run.effective, "run": {**run.effective["run"], "replicas": 3}})
    with pytest.raises(ConflictError, match="other-team") as raised:
        backend.apply(changed)
    assert raised.value.status == "warning"
    assert get(api, deployment)["spec"]["replicas"] == 4  # type: ignore[index]

    forcing = KubernetesBackend(api, namespace=k8s_namespace, force_conflicts=True)
    try:
        forcing.apply(changed)
    finally:
        forcing.close()
    assert get(api, deployment)["spec"]["replicas"] == 3  # type: ignore[index]


# --- missing CRD ----------------------------------------------------------------------------------


def test_missing_crd_makes_the_run_unschedulable_and_others_go_on(
    k8s_cluster: ControlPlane, api: ApiClient, k8s_namespace: str
) -> None:
    crd_file = Path(CRD_DIR) / "kubeflow.org_mxjobs.yaml"
    k8s_cluster.kubectl("delete", "-f", str(crd_file), "--wait=true")
    backend = KubernetesBackend(api, namespace=k8s_namespace)
    try:
        mx = run_for(CASES / "mxjob.yaml", namespace=k8s_namespace)
        with pytest.raises(PermanentBackendError, match="Kubeflow Training Operator") as raised:
            backend.submit(mx)
        assert raised.value.status == "unschedulable"
        backend.submit(job_run(k8s_namespace, "still-runs"))
        assert collect(backend, "still-runs", {"succeeded", "failed"})[-1].status == "succeeded"
        # The operator gets installed: the same run now goes through.
        k8s_cluster.kubectl("apply", "-f", str(crd_file))
        k8s_cluster.kubectl("wait", "--for=condition=Established", "crd/mxjobs.kubeflow.org", "--timeout=60s")
        wait_for(lambda: backend.submit(mx), timeout=DEADLINE, what="the MXJob to be accepted once its CRD is back")
        collect(backend, mx.name, {"scheduled"})
    finally:
        backend.close()
        k8s_cluster.kubectl("apply", "-f", str(crd_file))


# --- watches: resume after 410, no LIST at steady state --------------------------------------------


def test_watch_resumes_after_410_with_one_relist(k8s_cluster: ControlPlane, api: ApiClient, k8s_namespace: str) -> None:
    backend = KubernetesBackend(api, namespace=k8s_namespace, watch_seconds=2)
    try:
        informer = backend.informer(("batch/v1", "Job"))
        backend.submit(job_run(k8s_namespace, "before"))
        collect(backend, "before", {"succeeded"})
        lists = informer.lists
        # Move etcd on past what the informer has seen, then compact: its resourceVersion is gone.
        core = Client(api)
        for i in range(3):
            core.request(
                "POST",
                f"/api/v1/namespaces/{k8s_namespace}/configmaps",
                verb="CREATE",
                body={"metadata": {"name": f"filler-{i}"}},
            )
        k8s_cluster.compact_etcd()
        informer.interrupt()
        wait_for(lambda: informer.lists > lists, timeout=DEADLINE, what="the informer to relist after 410")
        assert informer.lists == lists + 1
        backend.submit(job_run(k8s_namespace, "after"))
        assert collect(backend, "after", {"succeeded"})[-1].status == "succeeded"
    finally:
        backend.close()


def test_no_list_calls_at_steady_state(api: ApiClient, k8s_namespace: str) -> None:
    backend = KubernetesBackend(api, namespace=k8s_namespace, watch_seconds=1)
    try:
        lists = backend.client.calls["LIST"]
        watches = backend.client.calls["WATCH"]
        kinds = len(backend.informers())
        # Every informer's watch ends (server timeout) and is resumed at least twice.
        wait_for(
            lambda: backend.client.calls["WATCH"] >= watches + 2 * kinds,
            timeout=DEADLINE,
            what="two rounds of watch reconnects",
        )
        assert backend.client.calls["LIST"] == lists
        assert lists == kinds  # one LIST per kind at start, and only then
    finally:
        backend.close()


def test_two_daemons_in_one_namespace_never_touch_each_others_runs(api: ApiClient, k8s_namespace: str) -> None:
    """Each daemon labels what it makes with its identity: the other neither lists, adopts, stops,
    deletes nor takes over it, even for a run of the same name (a repo and its fork)."""
    ours = KubernetesBackend(api, namespace=k8s_namespace, instance="instance-a")
    theirs = KubernetesBackend(api, namespace=k8s_namespace, instance="instance-b")
    try:
        run = service_run(k8s_namespace, "shared")
        ours.submit(run)
        wait_for(lambda: any(o.run == "shared" for o in ours.list_owned()), timeout=DEADLINE, what="our object")
        deployments = theirs.informer(("apps/v1", "Deployment"))
        wait_for(lambda: deployments.get(k8s_namespace, "shared") is not None, timeout=DEADLINE, what="b's cache")
        assert not any(o.run == "shared" for o in theirs.list_owned())
        with pytest.raises(PermanentBackendError, match="another reconciler"):
            theirs.submit(run)
        with pytest.raises(PermanentBackendError, match="not managed by this reconciler"):
            theirs.apply(run)
        theirs.delete("shared")
        theirs.stop("shared")
        live = Client(api).request("GET", f"/apis/apps/v1/namespaces/{k8s_namespace}/deployments/shared", verb="GET")
        assert live["metadata"]["labels"]["reconciler.polyaxon.io/instance"] == "instance-a"
        assert "deletionTimestamp" not in live["metadata"]
        assert not [t for t in theirs.observe(timeout=0.2) if t.run == "shared" and t.status != "stopped"]
        ours.delete("shared")
    finally:
        ours.close()
        theirs.close()
