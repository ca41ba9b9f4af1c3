"""service -> apps/v1 Deployment (replicas, kept running) + v1 Service (its ports)."""

from __future__ import annotations

from typing import Any

from reconciler.model import LABEL_RUN
from reconciler.render.context import Context, RenderError
from reconciler.render.pod import pod, replica_count


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
                "metadata": ctx.metadata(),
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
