"""service -> apps/v1 Deployment (replicas, kept running) + v1 Service (its ports).

The Service is named after the operation, not the run (`service_name`): its DNS name is what
clients of the service are configured with, so it must survive a new run of the operation (a
retry, a spec change after a failure). It selects the pods of the run that rendered it, and the
op's next run takes it over (server-side apply; the backend allows that for our own Service of
the same op). Runs that are not the op's one converged run (a preview, a tick, an event, a DAG
op) keep a Service named after the run, so they never steal the op's.
"""

from __future__ import annotations

import hashlib
from typing import Any

from reconciler.model import LABEL_RUN, Cause, RunRequest
from reconciler.render.context import Context, RenderError
from reconciler.render.pod import pod, replica_count

# The causes of an op's converged run: the tracked branch's commit, and its retries.
_OP_CAUSES = frozenset({Cause.COMMIT, Cause.RETRY})


def service_name(run: RunRequest) -> str:
    """The Service's name: `<op slug>-<8 hex of the op key>` (stable across the op's runs, unique
    per repo and file, a DNS-1035 label of at most 49 characters) for the op's converged run;
    the run's name for any other."""
    if run.cause in _OP_CAUSES:
        name = f"{run.op.slug}-{hashlib.sha256(str(run.op).encode()).hexdigest()[:8]}"
    else:
        name = run.name
    return name if name[:1].isalpha() else f"s-{name}"[:63].rstrip("-")


def service(ctx: Context) -> list[dict[str, Any]]:
    p = pod(ctx, ctx.spec)
    p.spec["restartPolicy"] = "Always"  # the only policy a Deployment accepts
    ports = ctx.spec.get("ports") or []
    if any(isinstance(port, bool) or not isinstance(port, int) for port in ports):
        raise RenderError(f"service ports must be numbers after filling params, got {ports!r}")
    declared = {cp.get("containerPort") for cp in p.main.get("ports", []) if isinstance(cp, dict)}
    missing = [{"containerPort": port, "protocol": "TCP"} for port in ports if port not in declared]
    if missing:
        p.main.setdefault("ports", []).extend(missing)
    selector = {LABEL_RUN: ctx.name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.metadata(),
        "spec": {
            "replicas": replica_count(ctx.spec),
            "selector": {"matchLabels": selector},
            "template": p.template,
        },
    }
    out = [deployment]
    if ports:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": ctx.metadata(service_name(ctx.run)),
                "spec": {
                    "type": "ClusterIP",
                    "selector": selector,
                    "ports": [
                        {"name": f"port-{port}", "port": port, "targetPort": port, "protocol": "TCP"} for port in ports
                    ],
                },
            }
        )
    return out
