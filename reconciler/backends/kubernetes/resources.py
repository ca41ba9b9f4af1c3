"""The Kubernetes resources the reconciler creates, where they live in the API, and who serves them.

One table, so that the client, the informers and the missing-CRD message agree on every kind.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    api_version: str  # "batch/v1", "v1", "kubeflow.org/v1"
    kind: str
    plural: str
    operator: str | None = None  # what to install when the API is missing (None: built in)

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def key(self) -> tuple[str, str]:
        return self.api_version, self.kind

    def collection(self, namespace: str | None) -> str:
        base = f"/api/{self.api_version}" if not self.group else f"/apis/{self.api_version}"
        if namespace is None:
            return f"{base}/{self.plural}"
        return f"{base}/namespaces/{namespace}/{self.plural}"

    def item(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"


_KUBEFLOW = "the Kubeflow Training Operator (https://github.com/kubeflow/training-operator)"
_MPI = "the Kubeflow MPI Operator v2 (https://github.com/kubeflow/mpi-operator)"
_RAY = "KubeRay (https://github.com/ray-project/kuberay)"
_DASK = "the Dask Kubernetes Operator (https://github.com/dask/dask-kubernetes)"
_SPARK = "the Kubeflow Spark Operator (https://github.com/kubeflow/spark-operator)"

RESOURCES = (
    Resource("batch/v1", "Job", "jobs"),
    Resource("apps/v1", "Deployment", "deployments"),
    Resource("v1", "Service", "services"),
    Resource("kubeflow.org/v1", "TFJob", "tfjobs", _KUBEFLOW),
    Resource("kubeflow.org/v1", "PyTorchJob", "pytorchjobs", _KUBEFLOW),
    Resource("kubeflow.org/v1", "MXJob", "mxjobs", _KUBEFLOW),
    Resource("kubeflow.org/v1", "XGBoostJob", "xgboostjobs", _KUBEFLOW),
    Resource("kubeflow.org/v2beta1", "MPIJob", "mpijobs", _MPI),
    Resource("ray.io/v1", "RayJob", "rayjobs", _RAY),
    Resource("ray.io/v1", "RayCluster", "rayclusters", _RAY),
    Resource("kubernetes.dask.org/v1", "DaskJob", "daskjobs", _DASK),
    Resource("kubernetes.dask.org/v1", "DaskCluster", "daskclusters", _DASK),
    Resource("kubernetes.dask.org/v1", "DaskAutoscaler", "daskautoscalers", _DASK),
    Resource("sparkoperator.k8s.io/v1beta2", "SparkApplication", "sparkapplications", _SPARK),
)
BY_KEY = {r.key: r for r in RESOURCES}

# Objects whose status is the run's status; the others (Service, DaskAutoscaler) only support it.
PRIMARY_KINDS = frozenset(
    {
        "Job",
        "Deployment",
        "TFJob",
        "PyTorchJob",
        "MXJob",
        "XGBoostJob",
        "MPIJob",
        "RayJob",
        "RayCluster",
        "DaskJob",
        "DaskCluster",
        "SparkApplication",
    }
)
# Kinds kept running and converged to spec; edits and deletions in the cluster are drift.
LONG_RUNNING_KINDS = frozenset({"Deployment", "Service", "RayCluster", "DaskCluster", "DaskAutoscaler"})


def resource_for(manifest: dict[str, object]) -> Resource:
    key = (str(manifest.get("apiVersion")), str(manifest.get("kind")))
    if key not in BY_KEY:
        raise KeyError(f"the reconciler does not manage {key[1]} ({key[0]})")
    return BY_KEY[key]
