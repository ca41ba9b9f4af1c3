"""sparkjob -> sparkoperator.k8s.io/v1beta2 SparkApplication (Kubeflow Spark operator).

Spark does not take pod templates: the driver and the executor are described field by field
(cores, memory, env, mounts, scheduling), so the replicas' pods are flattened into those fields.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.render.context import Context, RenderError
from reconciler.render.objects import k8s_object
from reconciler.render.pod import pod, replica_count

# Pod fields that SparkPodSpec has under the same name.
_POD_FIELDS = (
    "nodeSelector",
    "affinity",
    "tolerations",
    "securityContext",
    "schedulerName",
    "hostNetwork",
    "hostAliases",
    "dnsConfig",
    "priorityClassName",
)
_CONTAINER_FIELDS = ("env", "envFrom", "volumeMounts", "ports", "lifecycle")
_WHOLE = re.compile(r"^\d+$")


def _spark_pod(ctx: Context, replica: dict[str, Any], role: str) -> tuple[dict[str, Any], str | None]:
    p = pod(ctx, replica, main_name=f"spark-{role}", extra_labels={"reconciler.polyaxon.io/replica": role})
    main = p.main
    out: dict[str, Any] = {}
    resources = main.get("resources") or {}
    cpu = (resources.get("requests") or {}).get("cpu")
    if cpu is not None:
        if _WHOLE.match(str(cpu)):
            out["cores"] = int(cpu)
        else:
            out["coreRequest"] = str(cpu)
    cpu_limit = (resources.get("limits") or {}).get("cpu")
    if cpu_limit is not None:
        out["coreLimit"] = str(cpu_limit)
    memory = (resources.get("requests") or {}).get("memory") or (resources.get("limits") or {}).get("memory")
    if memory is not None:
        out["memory"] = str(memory)
    gpu = (resources.get("limits") or {}).get("nvidia.com/gpu")
    if gpu is not None:
        out["gpu"] = {"name": "nvidia.com/gpu", "quantity": int(gpu)}
    for key in _CONTAINER_FIELDS:
        if main.get(key):
            out[key] = main[key]
    out["labels"] = p.template["metadata"]["labels"]
    out["annotations"] = p.template["metadata"]["annotations"]
    spec = p.spec
    for key in _POD_FIELDS:
        if spec.get(key) is not None:
            out[key] = spec[key]
    if spec.get("serviceAccountName"):
        out["serviceAccount"] = spec["serviceAccountName"]
    if spec.get("initContainers"):
        out["initContainers"] = spec["initContainers"]
    if len(spec["containers"]) > 1:
        out["sidecars"] = spec["containers"][1:]
    return out, main.get("image")


def sparkjob(ctx: Context) -> list[dict[str, Any]]:
    driver = ctx.spec.get("driver")
    executor = ctx.spec.get("executor")
    if not isinstance(driver, dict) or not isinstance(executor, dict):
        raise RenderError("sparkjob needs a driver and an executor")
    driver_spec, driver_image = _spark_pod(ctx, driver, "driver")
    executor_spec, executor_image = _spark_pod(ctx, executor, "executor")
    executor_spec = {"instances": replica_count(executor), **executor_spec}
    image = driver_image or executor_image
    if not image:
        raise RenderError("sparkjob needs an image on the driver's container")
    spec: dict[str, Any] = {
        "type": ctx.spec.get("type") or "Python",
        "mode": ctx.spec.get("deployMode") or "cluster",
        "image": image,
    }
    for src, dst in (
        ("sparkVersion", "sparkVersion"),
        ("pythonVersion", "pythonVersion"),
        ("mainClass", "mainClass"),
        ("mainApplicationFile", "mainApplicationFile"),
        ("arguments", "arguments"),
        ("hadoopConf", "hadoopConf"),
        ("sparkConf", "sparkConf"),
        ("hadoopConfigMap", "hadoopConfigMap"),
        ("sparkConfigMap", "sparkConfigMap"),
    ):
        if ctx.spec.get(src) is not None:
            spec[dst] = ctx.spec[src]
    # Spark has one volume list for the application; the replicas mount from it by name.
    volumes: dict[str, Any] = {}
    for volume in [*(ctx.spec.get("volumes") or []), *(v for r in (driver, executor) for v in r.get("volumes") or [])]:
        volumes.setdefault(str(volume.get("name")), k8s_object(volume))
    if volumes:
        spec["volumes"] = list(volumes.values())
    retries = ctx.termination.get("maxRetries")
    spec["restartPolicy"] = {"type": "OnFailure", "onFailureRetries": retries} if retries else {"type": "Never"}
    if ctx.termination.get("ttl") is not None:
        spec["timeToLiveSeconds"] = ctx.termination["ttl"]
    spec["driver"] = driver_spec
    spec["executor"] = executor_spec
    return [
        {
            "apiVersion": "sparkoperator.k8s.io/v1beta2",
            "kind": "SparkApplication",
            "metadata": ctx.metadata(),
            "spec": spec,
        }
    ]
