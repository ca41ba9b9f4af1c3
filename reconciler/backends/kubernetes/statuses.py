"""A managed object's status, read as one of Polyaxon's run statuses (design.md §6). Pure.

Each operator reports progress its own way (Job conditions, Kubeflow conditions, KubeRay's two
status fields, Dask phases, Spark application states, Deployment availability); this module is
the only place that knows them, so the backend and its tests share one reading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Set on an object before the backend deletes it to stop the run, so that its DELETED event
# reads as "stopped" even after a restart of the reconciler.
STOP_ANNOTATION = "reconciler.polyaxon.io/stop-requested"

FINAL = frozenset({"succeeded", "failed", "stopped", "skipped", "upstream_failed", "done"})


@dataclass(frozen=True)
class Mapped:
    status: str
    reason: str = ""
    message: str = ""


def _conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    status = obj.get("status") or {}
    return [c for c in status.get("conditions") or [] if isinstance(c, dict)]


def _true(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in _conditions(obj):
        if condition.get("type") == kind and str(condition.get("status")) == "True":
            return condition
    return None


def _from(condition: dict[str, Any], status: str) -> Mapped:
    return Mapped(status, str(condition.get("reason") or ""), str(condition.get("message") or ""))


def job(obj: dict[str, Any]) -> Mapped:
    for kind, status in (("Complete", "succeeded"), ("Failed", "failed")):
        found = _true(obj, kind)
        if found:
            return _from(found, status)
    suspended = _true(obj, "Suspended")
    if suspended:  # e.g. held by a queueing controller such as Kueue
        return _from(suspended, "queued")
    state = obj.get("status") or {}
    if state.get("ready"):
        return Mapped("running")
    if state.get("active"):
        return Mapped("starting")
    return Mapped("scheduled")


def kubeflow(obj: dict[str, Any]) -> Mapped:
    for kind, status in (("Succeeded", "succeeded"), ("Failed", "failed")):
        found = _true(obj, kind)
        if found:
            return _from(found, status)
    latest: tuple[str, dict[str, Any]] | None = None
    for condition in _conditions(obj):
        if str(condition.get("status")) != "True":
            continue
        at = str(condition.get("lastTransitionTime") or condition.get("lastUpdateTime") or "")
        if latest is None or at >= latest[0]:
            latest = (at, condition)
    if latest is None:
        return Mapped("scheduled")
    mapped = {"Created": "scheduled", "Running": "running", "Restarting": "retrying", "Suspended": "queued"}
    return _from(latest[1], mapped.get(str(latest[1].get("type")), "unknown"))


_RAY_JOB_STATUS = {
    "PENDING": "starting",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "STOPPED": "stopped",
}
_RAY_DEPLOYMENT = {
    "": "scheduled",
    "New": "scheduled",
    "Initializing": "starting",
    "Waiting": "queued",
    "Running": "running",
    "Retrying": "retrying",
    "Suspending": "stopping",
    "Suspended": "stopped",
}


def rayjob(obj: dict[str, Any]) -> Mapped:
    state = obj.get("status") or {}
    deployment = str(state.get("jobDeploymentStatus") or "")
    job_status = str(state.get("jobStatus") or "")
    reason, message = str(state.get("reason") or ""), str(state.get("message") or "")
    if deployment in ("Failed", "ValidationFailed"):
        return Mapped("failed", reason or deployment, message)
    if job_status in ("SUCCEEDED", "FAILED", "STOPPED"):
        return Mapped(_RAY_JOB_STATUS[job_status], reason or job_status, message)
    if deployment == "Complete":
        return Mapped("succeeded", reason, message)
    if deployment == "Running" and job_status:
        return Mapped(_RAY_JOB_STATUS.get(job_status, "running"), reason, message)
    return Mapped(_RAY_DEPLOYMENT.get(deployment, "unknown"), reason or deployment, message)


def raycluster(obj: dict[str, Any]) -> Mapped:
    state = obj.get("status") or {}
    value = str(state.get("state") or "")
    reason = str(state.get("reason") or "")
    mapped = {"ready": "running", "failed": "failed", "suspended": "stopped"}.get(value, "starting")
    return Mapped(mapped, reason or value, "")


def daskjob(obj: dict[str, Any]) -> Mapped:
    value = str((obj.get("status") or {}).get("jobStatus") or "")
    mapped = {
        "JobCreated": "scheduled",
        "ClusterCreated": "starting",
        "Running": "running",
        "Successful": "succeeded",
        "Failed": "failed",
    }
    return Mapped(mapped.get(value, "scheduled" if not value else "unknown"), value)


def daskcluster(obj: dict[str, Any]) -> Mapped:
    value = str((obj.get("status") or {}).get("phase") or "")
    mapped = {"Created": "starting", "Pending": "starting", "Running": "running", "Failed": "failed"}
    return Mapped(mapped.get(value, "scheduled" if not value else "unknown"), value)


_SPARK = {
    "": "scheduled",
    "NEW": "scheduled",
    "SUBMITTED": "starting",
    "RUNNING": "running",
    "SUCCEEDING": "running",
    "FAILING": "running",
    "COMPLETED": "succeeded",
    "FAILED": "failed",
    "SUBMISSION_FAILED": "failed",
    "PENDING_RERUN": "retrying",
    "INVALIDATING": "retrying",
    "UNKNOWN": "unknown",
}


def sparkapplication(obj: dict[str, Any]) -> Mapped:
    application = (obj.get("status") or {}).get("applicationState") or {}
    value = str(application.get("state") or "")
    return Mapped(_SPARK.get(value, "unknown"), value, str(application.get("errorMessage") or ""))


def deployment(obj: dict[str, Any]) -> Mapped:
    progressing = next((c for c in _conditions(obj) if c.get("type") == "Progressing"), None)
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return _from(progressing, "failed")
    failure = _true(obj, "ReplicaFailure")
    if failure:
        return _from(failure, "warning")
    wanted = (obj.get("spec") or {}).get("replicas", 1)
    state = obj.get("status") or {}
    generation_seen = state.get("observedGeneration", 0) >= (obj.get("metadata") or {}).get("generation", 0)
    converged = (
        generation_seen and state.get("updatedReplicas", 0) >= wanted and state.get("availableReplicas", 0) >= wanted
    )
    available = _true(obj, "Available")
    if available and converged:
        return _from(available, "running")
    return Mapped("starting", "Rollout", f"{state.get('availableReplicas', 0)}/{wanted} replicas available")


MAPPERS: dict[str, Callable[[dict[str, Any]], Mapped]] = {
    "Job": job,
    "TFJob": kubeflow,
    "PyTorchJob": kubeflow,
    "MXJob": kubeflow,
    "XGBoostJob": kubeflow,
    "MPIJob": kubeflow,
    "RayJob": rayjob,
    "RayCluster": raycluster,
    "DaskJob": daskjob,
    "DaskCluster": daskcluster,
    "SparkApplication": sparkapplication,
    "Deployment": deployment,
}


def status_of(obj: dict[str, Any]) -> Mapped | None:
    """The run status an object shows, or None for kinds that do not carry one (Service)."""
    mapper = MAPPERS.get(str(obj.get("kind")))
    if mapper is None:
        return None
    return mapper(obj)


def status_of_deleted(obj: dict[str, Any]) -> Mapped:
    """What the disappearance of a run's primary object means."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if STOP_ANNOTATION in annotations:
        return Mapped("stopped", "StoppedByReconciler", "stopped on request")
    last = status_of(obj)
    if last is not None and last.status in FINAL:
        return last
    return Mapped("stopped", "Deleted", f"{obj.get('kind')} was deleted outside the reconciler")
