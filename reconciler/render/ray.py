"""rayjob, raycluster -> ray.io/v1 RayJob and RayCluster (KubeRay)."""

from __future__ import annotations

from typing import Any

import yaml

from reconciler.render.context import Context, RenderError
from reconciler.render.pod import pod, replica_count


def _start_params(replica: dict[str, Any]) -> dict[str, str]:
    # KubeRay wants every rayStartParams value as a string.
    params = replica.get("rayStartParams") or {}
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}


def _cluster_spec(ctx: Context) -> dict[str, Any]:
    head = ctx.spec.get("head")
    if not isinstance(head, dict):
        raise RenderError(f"{ctx.spec.get('kind')} needs a head replica")
    spec: dict[str, Any] = {}
    if ctx.spec.get("rayVersion"):
        spec["rayVersion"] = str(ctx.spec["rayVersion"])
    if ctx.spec.get("enableInTreeAutoscaling") is not None:
        spec["enableInTreeAutoscaling"] = ctx.spec["enableInTreeAutoscaling"]
    if ctx.spec.get("autoscalerOptions"):
        spec["autoscalerOptions"] = ctx.spec["autoscalerOptions"]
    head_pod = pod(ctx, head, main_name="ray-head", extra_labels={"reconciler.polyaxon.io/replica": "head"})
    if head_pod.restart_policy:
        head_pod.spec["restartPolicy"] = head_pod.restart_policy
    spec["headGroupSpec"] = {"rayStartParams": _start_params(head), "template": head_pod.template}
    groups: list[dict[str, Any]] = []
    for group, replica in (ctx.spec.get("workers") or {}).items():
        worker = pod(ctx, replica, main_name="ray-worker", extra_labels={"reconciler.polyaxon.io/replica": group})
        if worker.restart_policy:
            worker.spec["restartPolicy"] = worker.restart_policy
        count = replica_count(replica)
        entry: dict[str, Any] = {"groupName": group, "replicas": count}
        entry["minReplicas"] = replica.get("minReplicas", count)
        entry["maxReplicas"] = replica.get("maxReplicas", count)
        entry["rayStartParams"] = _start_params(replica)
        entry["template"] = worker.template
        groups.append(entry)
    if groups:
        spec["workerGroupSpecs"] = groups
    return spec


def raycluster(ctx: Context) -> list[dict[str, Any]]:
    return [{"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": ctx.metadata(), "spec": _cluster_spec(ctx)}]


def rayjob(ctx: Context) -> list[dict[str, Any]]:
    if not ctx.spec.get("entrypoint"):
        raise RenderError("rayjob needs an entrypoint")
    spec: dict[str, Any] = {"entrypoint": ctx.spec["entrypoint"]}
    if ctx.spec.get("runtimeEnv"):
        # KubeRay takes the runtime environment as a YAML document in a string.
        spec["runtimeEnvYAML"] = yaml.safe_dump(ctx.spec["runtimeEnv"], sort_keys=False)
    if ctx.spec.get("metadata"):
        spec["metadata"] = {str(k): str(v) for k, v in ctx.spec["metadata"].items()}
    spec["shutdownAfterJobFinishes"] = ctx.spec.get("shutdownAfterJobFinishes", True)
    ttl = ctx.spec.get("ttlSecondsAfterFinished", ctx.termination.get("ttl"))
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    deadline = ctx.spec.get("activeDeadlineSeconds", ctx.termination.get("timeout"))
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if ctx.termination.get("maxRetries"):
        spec["backoffLimit"] = ctx.termination["maxRetries"]
    spec["rayClusterSpec"] = _cluster_spec(ctx)
    return [{"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": ctx.metadata(), "spec": spec}]
