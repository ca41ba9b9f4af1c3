"""Logs of runs on the real control plane: kwok plays the kubelet behind the API server's
pods/log, serving each pod's log from a file (`tests.cluster.pod_logs`). Every replica's log is
read, a followed log only grows, and a run's log is archived into the data dir when it ends, so it
outlives the pods."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from reconciler.backends.kubernetes import KubernetesBackend
from tests.cluster.controlplane import DEFAULT_POD_LOG, ControlPlane
from tests.cluster.pod_logs import PodLog
from tests.cluster.poll import wait_for
from tests.integration.backends.test_kubernetes_backend import DEADLINE, collect, job_run, service_run

pytestmark = pytest.mark.k8s


@pytest.fixture
def api(k8s_cluster: ControlPlane) -> Iterator[ApiClient]:
    with contextlib.closing(k8s_cluster.api_client()) as client:
        yield client


@pytest.fixture
def backend(api: ApiClient, k8s_namespace: str, tmp_path: Path) -> Iterator[KubernetesBackend]:
    b = KubernetesBackend(api, namespace=k8s_namespace, log_dir=tmp_path / "k8s-logs")
    try:
        yield b
    finally:
        b.close()


def running_pods(api: ApiClient, namespace: str, run: str, count: int) -> list[str]:
    core = k8s.CoreV1Api(api)

    def found() -> list[str] | None:
        pods = core.list_namespaced_pod(namespace, label_selector=f"reconciler.polyaxon.io/run={run}").items
        names = sorted(p.metadata.name for p in pods if p.status.phase == "Running")
        return names if len(names) == count else None

    return wait_for(found, timeout=DEADLINE, what=f"{count} running pods of {run}")


def test_every_replica_is_read_a_followed_log_only_grows_and_a_stop_archives_it(
    backend: KubernetesBackend, api: ApiClient, k8s_namespace: str, tmp_path: Path
) -> None:
    run = service_run(k8s_namespace, "web", replicas=2)
    backend.submit(run)
    pods = running_pods(api, k8s_namespace, "web", 2)
    logs = {pod: PodLog(api, k8s_namespace, pod, tmp_path / "pods" / f"{pod}.log") for pod in pods}
    for i, pod in enumerate(pods):
        logs[pod].append(f"replica {i} starting", f"replica {i} serving")

    def has(text: str) -> bool:
        data, _ = backend.read_log("web", 0, 1 << 20)
        return text in data.decode()

    wait_for(lambda: has("replica 1 serving") and has("replica 0 serving"), timeout=DEADLINE, what="both replicas")
    first, size = backend.read_log("web", 0, 1 << 20)
    text = first.decode()
    for i, pod in enumerate(pods):  # more than one container: each line says whose it is
        assert f"{pod}/polyaxon-main | replica {i} starting\n{pod}/polyaxon-main | replica {i} serving\n" in text, text
    assert DEFAULT_POD_LOG not in text

    logs[pods[0]].append("replica 0 got a request")
    wait_for(lambda: backend.read_log("web", 0, 1 << 20)[1] > size, timeout=DEADLINE, what="the new line")
    more, _ = backend.read_log("web", size, 1 << 20)
    assert more.decode().strip().endswith("replica 0 got a request") and "starting" not in more.decode()
    assert backend.read_log("web", 0, size)[0] == first  # what was read never changes
    assert backend.logs("web", tail=1).strip().endswith("replica 0 got a request")

    backend.stop("web")
    archive = tmp_path / "k8s-logs" / "web.log"
    assert archive.is_file() and "replica 0 got a request" in archive.read_text()
    core = k8s.CoreV1Api(api)
    wait_for(
        lambda: not core.list_namespaced_pod(k8s_namespace, label_selector="reconciler.polyaxon.io/run=web").items,
        timeout=DEADLINE,
        what="the pods to go",
    )
    kept = backend.logs("web")
    assert "replica 1 serving" in kept and "replica 0 got a request" in kept
    backend.delete("web")  # forgetting the run forgets its log
    assert not archive.exists()


def test_a_finished_jobs_log_is_archived_and_outlives_its_pod(
    backend: KubernetesBackend, api: ApiClient, k8s_namespace: str, tmp_path: Path
) -> None:
    backend.submit(job_run(k8s_namespace, "short"))
    collect(backend, "short", {"succeeded"})
    archive = tmp_path / "k8s-logs" / "short.log"
    wait_for(archive.is_file, timeout=DEADLINE, what="the archive")
    assert DEFAULT_POD_LOG in archive.read_text()
    core = k8s.CoreV1Api(api)
    for pod in core.list_namespaced_pod(k8s_namespace, label_selector="reconciler.polyaxon.io/run=short").items:
        core.delete_namespaced_pod(pod.metadata.name, k8s_namespace, grace_period_seconds=0)
    assert DEFAULT_POD_LOG in backend.logs("short")
    data, size = backend.read_log("short", 0, 10)
    assert len(data) == 10 and size == archive.stat().st_size
