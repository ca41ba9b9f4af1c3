"""tfjob, pytorchjob, mxjob, xgbjob -> kubeflow.org/v1; mpijob -> kubeflow.org/v2beta1 MPIJob.

The training operator finds the main container by a fixed name per framework (`tensorflow`,
`pytorch`, ...) and refuses jobs without one, so an unnamed main container gets that name here
instead of the usual `polyaxon-main`.
"""

from __future__ import annotations

from typing import Any

from reconciler.render.batch import termination_fields
from reconciler.render.context import Context
from reconciler.render.pod import MAIN, pod, replica_count


def _run_policy(ctx: Context) -> dict[str, Any]:
    policy: dict[str, Any] = {}
    if ctx.spec.get("cleanPodPolicy"):
        policy["cleanPodPolicy"] = ctx.spec["cleanPodPolicy"]
    policy.update(termination_fields(ctx.termination, ctx.options.job_ttl_seconds))
    scheduling = ctx.spec.get("schedulingPolicy")
    if scheduling:
        policy["schedulingPolicy"] = scheduling
    return policy


def _replica_specs(ctx: Context, roles: dict[str, str], main_name: str) -> dict[str, Any]:
    specs: dict[str, Any] = {}
    for field, role in roles.items():
        replica = ctx.spec.get(field)
        if not isinstance(replica, dict):
            continue
        p = pod(ctx, replica, main_name=main_name, extra_labels={"reconciler.polyaxon.io/replica": role.lower()})
        specs[role] = {
            "replicas": replica_count(replica),
            "restartPolicy": p.restart_policy or "Never",
            "template": p.template,
        }
    return specs


def _kubeflow(
    ctx: Context, kind: str, specs_key: str, roles: dict[str, str], main_name: str, extra: dict[str, Any]
) -> list[dict[str, Any]]:
    spec: dict[str, Any] = {"runPolicy": _run_policy(ctx), **extra}
    spec[specs_key] = _replica_specs(ctx, roles, main_name)
    return [{"apiVersion": "kubeflow.org/v1", "kind": kind, "metadata": ctx.metadata(), "spec": spec}]


def tfjob(ctx: Context) -> list[dict[str, Any]]:
    extra: dict[str, Any] = {}
    if ctx.spec.get("successPolicy") is not None:
        extra["successPolicy"] = ctx.spec["successPolicy"]
    if ctx.spec.get("enableDynamicWorker") is not None:
        extra["enableDynamicWorker"] = ctx.spec["enableDynamicWorker"]
    roles = {"chief": "Chief", "ps": "PS", "worker": "Worker", "evaluator": "Evaluator"}
    return _kubeflow(ctx, "TFJob", "tfReplicaSpecs", roles, "tensorflow", extra)


# Polyaxon spells rendezvous "rdvz"; the operator spells it "rdzv".
_ELASTIC_KEYS = {
    "rdvzBackend": "rdzvBackend",
    "rdvzPort": "rdzvPort",
    "rdvzHost": "rdzvHost",
    "rdvzId": "rdzvId",
    "rdvzConf": "rdzvConf",
    "Metrics": "metrics",
}


def pytorchjob(ctx: Context) -> list[dict[str, Any]]:
    extra: dict[str, Any] = {}
    elastic = ctx.spec.get("elasticPolicy")
    if isinstance(elastic, dict):
        extra["elasticPolicy"] = {_ELASTIC_KEYS.get(k, k): v for k, v in elastic.items()}
    if ctx.spec.get("nProcPerNode") is not None:
        extra["nprocPerNode"] = str(ctx.spec["nProcPerNode"])
    roles = {"master": "Master", "worker": "Worker"}
    return _kubeflow(ctx, "PyTorchJob", "pytorchReplicaSpecs", roles, "pytorch", extra)


def mxjob(ctx: Context) -> list[dict[str, Any]]:
    extra = {"jobMode": ctx.spec.get("mode") or "MXTrain"}
    roles = {
        "scheduler": "Scheduler",
        "server": "Server",
        "worker": "Worker",
        "tuner": "Tuner",
        "tunerTracker": "TunerTracker",
        "tunerServer": "TunerServer",
    }
    return _kubeflow(ctx, "MXJob", "mxReplicaSpecs", roles, "mxnet", extra)


def xgbjob(ctx: Context) -> list[dict[str, Any]]:
    roles = {"master": "Master", "worker": "Worker"}
    return _kubeflow(ctx, "XGBoostJob", "xgbReplicaSpecs", roles, "xgboost", {})


def mpijob(ctx: Context) -> list[dict[str, Any]]:
    spec: dict[str, Any] = {}
    if ctx.spec.get("slotsPerWorker") is not None:
        spec["slotsPerWorker"] = ctx.spec["slotsPerWorker"]
    spec["runPolicy"] = _run_policy(ctx)
    spec["mpiReplicaSpecs"] = _replica_specs(ctx, {"launcher": "Launcher", "worker": "Worker"}, MAIN)
    return [{"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "metadata": ctx.metadata(), "spec": spec}]
