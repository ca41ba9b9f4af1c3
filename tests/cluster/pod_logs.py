"""Simulated container logs on the test cluster: kwok's kubelet server serves a pod's log from a
file named by a `Logs` object of that pod's name (kwok runs with --enable-crds=Logs), in the CRI
log format, following it as it grows. Every other pod prints `DEFAULT_POD_LOG`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kubernetes import client as k8s


class PodLog:
    """The log of one pod: `append(...)` prints lines, as the pod would."""

    def __init__(self, api: k8s.ApiClient, namespace: str, pod: str, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        body = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": {"name": pod, "namespace": namespace},
            "spec": {"logs": [{"containers": [], "logsFile": str(path), "follow": True}]},
        }
        k8s.CustomObjectsApi(api).create_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", namespace, "logs", body)

    def append(self, *lines: str) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            for line in lines:
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
                handle.write(f"{stamp} stdout F {line}\n")


__all__ = ["PodLog"]
