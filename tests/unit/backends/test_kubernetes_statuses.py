"""Each operator's way of reporting progress, read as a Polyaxon status."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.backends.kubernetes.statuses import STOP_ANNOTATION, status_of, status_of_deleted


def cond(kind: str, status: str = "True", at: str = "2026-01-01T00:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "status": status, "lastTransitionTime": at, **extra}


def obj(kind: str, status: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "r", "generation": 1}, "status": status or {}, **extra}


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("job new", obj("Job"), "scheduled"),
    ("job active", obj("Job", {"active": 1}), "starting"),
    ("job ready", obj("Job", {"active": 1, "ready": 1}), "running"),
    ("job complete", obj("Job", {"conditions": [cond("SuccessCriteriaMet"), cond("Complete")]}), "succeeded"),
    (
        "job failed",
        obj("Job", {"conditions": [cond("FailureTarget"), cond("Failed", reason="BackoffLimitExceeded")]}),
        "failed",
    ),
    ("job suspended", obj("Job", {"conditions": [cond("Suspended")]}), "queued"),
    ("job failed false", obj("Job", {"active": 1, "conditions": [cond("Failed", "False")]}), "starting"),
    ("tf created", obj("TFJob", {"conditions": [cond("Created")]}), "scheduled"),
    (
        "tf running",
        obj("TFJob", {"conditions": [cond("Created"), cond("Running", at="2026-01-01T00:01:00Z")]}),
        "running",
    ),
    (
        "tf restarting",
        obj(
            "PyTorchJob",
            {"conditions": [cond("Created"), cond("Running", "False"), cond("Restarting", at="2026-01-01T00:02:00Z")]},
        ),
        "retrying",
    ),
    ("tf succeeded", obj("MXJob", {"conditions": [cond("Running", "False"), cond("Succeeded")]}), "succeeded"),
    ("tf failed", obj("XGBoostJob", {"conditions": [cond("Failed")]}), "failed"),
    (
        "mpi running",
        obj("MPIJob", {"conditions": [cond("Created"), cond("Running", at="2026-01-02T00:00:00Z")]}),
        "running",
    ),
    ("rayjob new", obj("RayJob"), "scheduled"),
    ("rayjob init", obj("RayJob", {"jobDeploymentStatus": "Initializing"}), "starting"),
    ("rayjob pending", obj("RayJob", {"jobDeploymentStatus": "Running", "jobStatus": "PENDING"}), "starting"),
    ("rayjob running", obj("RayJob", {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}), "running"),
    ("rayjob ok", obj("RayJob", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}), "succeeded"),
    ("rayjob failed job", obj("RayJob", {"jobDeploymentStatus": "Complete", "jobStatus": "FAILED"}), "failed"),
    ("rayjob failed dep", obj("RayJob", {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"}), "failed"),
    ("rayjob retrying", obj("RayJob", {"jobDeploymentStatus": "Retrying"}), "retrying"),
    ("raycluster ready", obj("RayCluster", {"state": "ready"}), "running"),
    ("raycluster starting", obj("RayCluster"), "starting"),
    ("daskjob running", obj("DaskJob", {"jobStatus": "Running"}), "running"),
    ("daskjob ok", obj("DaskJob", {"jobStatus": "Successful"}), "succeeded"),
    ("daskjob failed", obj("DaskJob", {"jobStatus": "Failed"}), "failed"),
    ("daskcluster running", obj("DaskCluster", {"phase": "Running"}), "running"),
    ("spark submitted", obj("SparkApplication", {"applicationState": {"state": "SUBMITTED"}}), "starting"),
    ("spark running", obj("SparkApplication", {"applicationState": {"state": "RUNNING"}}), "running"),
    ("spark done", obj("SparkApplication", {"applicationState": {"state": "COMPLETED"}}), "succeeded"),
    (
        "spark failed",
        obj("SparkApplication", {"applicationState": {"state": "FAILED", "errorMessage": "oom"}}),
        "failed",
    ),
    ("spark rerun", obj("SparkApplication", {"applicationState": {"state": "PENDING_RERUN"}}), "retrying"),
    (
        "deploy rolling",
        obj("Deployment", {"observedGeneration": 1, "availableReplicas": 0}, spec={"replicas": 1}),
        "starting",
    ),
    (
        "deploy up",
        obj(
            "Deployment",
            {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2, "conditions": [cond("Available")]},
            spec={"replicas": 2},
        ),
        "running",
    ),
    (
        "deploy stale generation",
        obj(
            "Deployment",
            {"observedGeneration": 0, "updatedReplicas": 1, "availableReplicas": 1, "conditions": [cond("Available")]},
            spec={"replicas": 1},
        ),
        "starting",
    ),
    (
        "deploy stuck",
        obj("Deployment", {"conditions": [cond("Progressing", "False", reason="ProgressDeadlineExceeded")]}),
        "failed",
    ),
]


@pytest.mark.parametrize(("what", "value", "expected"), CASES, ids=[c[0] for c in CASES])
def test_status_mapping(what: str, value: dict[str, Any], expected: str) -> None:
    mapped = status_of(value)
    assert mapped is not None
    assert mapped.status == expected


def test_reasons_and_messages_are_carried() -> None:
    failed = status_of(obj("Job", {"conditions": [cond("Failed", reason="DeadlineExceeded", message="too slow")]}))
    assert failed is not None and (failed.reason, failed.message) == ("DeadlineExceeded", "too slow")
    spark = status_of(obj("SparkApplication", {"applicationState": {"state": "FAILED", "errorMessage": "oom"}}))
    assert spark is not None and (spark.reason, spark.message) == ("FAILED", "oom")


def test_services_carry_no_status() -> None:
    assert status_of({"kind": "Service"}) is None


def test_deleted_objects() -> None:
    stopped = obj("Job", {"active": 1})
    stopped["metadata"]["annotations"] = {STOP_ANNOTATION: "true"}
    assert status_of_deleted(stopped).status == "stopped"
    finished = obj("Job", {"conditions": [cond("Complete")]})
    assert status_of_deleted(finished).status == "succeeded"  # ttl cleanup of a finished run
    assert status_of_deleted(obj("Job", {"active": 1})).reason == "Deleted"
