"""job (and notifier, cleaner, tuner, which run one container to completion) -> batch/v1 Job."""

from __future__ import annotations

from typing import Any

from reconciler.render.context import Context
from reconciler.render.pod import pod


def termination_fields(termination: dict[str, Any], default_ttl: int | None = None) -> dict[str, Any]:
    """Polyaxon's termination as the Kubernetes fields most kinds share.

    Without `maxRetries` a failed run is not retried (backoffLimit 0), as in Polyaxon, rather
    than Kubernetes' default of 6 retries. Without `ttl`, finished objects are deleted after
    `default_ttl` seconds (the daemon's `kubernetes.job_ttl_seconds`; None: never).
    """
    out: dict[str, Any] = {"backoffLimit": termination.get("maxRetries") or 0}
    if termination.get("timeout") is not None:
        out["activeDeadlineSeconds"] = termination["timeout"]
    ttl = termination.get("ttl")
    if ttl is None:
        ttl = default_ttl
    if ttl is not None:
        out["ttlSecondsAfterFinished"] = ttl
    return out


def job(ctx: Context) -> list[dict[str, Any]]:
    p = pod(ctx, ctx.spec)
    # A Job's pods may only restart OnFailure or Never; anything else means "do not restart here".
    p.spec["restartPolicy"] = "OnFailure" if p.restart_policy == "OnFailure" else "Never"
    spec: dict[str, Any] = termination_fields(ctx.termination, ctx.options.job_ttl_seconds)
    if ctx.termination.get("podFailurePolicy"):
        spec["podFailurePolicy"] = ctx.termination["podFailurePolicy"]
    spec["template"] = p.template
    return [{"apiVersion": "batch/v1", "kind": "Job", "metadata": ctx.metadata(), "spec": spec}]
