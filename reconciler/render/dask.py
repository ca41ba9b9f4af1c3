"""daskjob, daskcluster -> kubernetes.dask.org/v1 DaskJob and DaskCluster (dask-kubernetes operator).

The operator requires a Service for the scheduler; Polyaxon's spec has no place for one, so the
renderer gives the standard one (comm 8786, dashboard 8787). A daskcluster with min/max
replicas also gets a DaskAutoscaler.
"""

from __future__ import annotations

from typing import Any

from reconciler.render.context import Context, RenderError
from reconciler.render.pod import pod, replica_count


def _pod_spec(ctx: Context, replica: dict[str, Any], main_name: str, role: str) -> dict[str, Any]:
    p = pod(ctx, replica, main_name=main_name, extra_labels={"reconciler.polyaxon.io/replica": role})
    if p.restart_policy:
        p.spec["restartPolicy"] = p.restart_policy
    # The operator's pod specs have no metadata; labels set here would be dropped.
    spec: dict[str, Any] = p.spec
    return spec


def _cluster(ctx: Context, cluster_name: str) -> dict[str, Any]:
    worker = ctx.spec.get("worker")
    scheduler = ctx.spec.get("scheduler")
    if not isinstance(worker, dict) or not isinstance(scheduler, dict):
        raise RenderError(f"{ctx.spec.get('kind')} needs a worker and a scheduler")
    return {
        "worker": {
            "replicas": replica_count(worker),
            "spec": _pod_spec(ctx, worker, "worker", "worker"),
        },
        "scheduler": {
            "spec": _pod_spec(ctx, scheduler, "scheduler", "scheduler"),
            "service": {
                "type": "ClusterIP",
                "selector": {
                    "dask.org/cluster-name": cluster_name,
                    "dask.org/component": "scheduler",
                },
                "ports": [
                    {"name": "tcp-comm", "protocol": "TCP", "port": 8786, "targetPort": "tcp-comm"},
                    {"name": "http-dashboard", "protocol": "TCP", "port": 8787, "targetPort": "http-dashboard"},
                ],
            },
        },
    }


def daskcluster(ctx: Context) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "kubernetes.dask.org/v1",
            "kind": "DaskCluster",
            "metadata": ctx.metadata(),
            "spec": _cluster(ctx, ctx.name),
        }
    ]
    low, high = ctx.spec.get("minReplicas"), ctx.spec.get("maxReplicas")
    if low is not None or high is not None:
        out.append(
            {
                "apiVersion": "kubernetes.dask.org/v1",
                "kind": "DaskAutoscaler",
                "metadata": ctx.metadata(),
                "spec": {"cluster": ctx.name, "minimum": low or 0, "maximum": high or low or 0},
            }
        )
    return out


def daskjob(ctx: Context) -> list[dict[str, Any]]:
    job = ctx.spec.get("job")
    if not isinstance(job, dict):
        raise RenderError("daskjob needs a job replica (the client that runs the work)")
    job_spec = _pod_spec(ctx, job, "job", "job")
    job_spec.setdefault("restartPolicy", "Never")
    # The operator names the cluster of a DaskJob after the job.
    spec = {"job": {"spec": job_spec}, "cluster": {"spec": _cluster(ctx, ctx.name)}}
    return [{"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob", "metadata": ctx.metadata(), "spec": spec}]
