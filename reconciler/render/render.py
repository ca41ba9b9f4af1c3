"""`render(run)`: a run as the Kubernetes objects that carry it out; one function per run kind.

Pure: the same run and options give the same objects, with no call to any cluster, so what
`reconciler render` prints is exactly what the Kubernetes backend applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.model import RunRequest
from reconciler.render import batch, dask, kubeflow, ray, service, spark
from reconciler.render.context import Context, RenderError, RenderOptions, build

Renderer = Callable[[Context], list[dict[str, Any]]]

RENDERERS: dict[str, Renderer] = {
    "job": batch.job,
    # notifier, cleaner and tuner run one container to completion, like a job.
    "notifier": batch.job,
    "cleaner": batch.job,
    "tuner": batch.job,
    "service": service.service,
    "tfjob": kubeflow.tfjob,
    "pytorchjob": kubeflow.pytorchjob,
    "mxjob": kubeflow.mxjob,
    "xgbjob": kubeflow.xgbjob,
    "mpijob": kubeflow.mpijob,
    "rayjob": ray.rayjob,
    "raycluster": ray.raycluster,
    "daskjob": dask.daskjob,
    "daskcluster": dask.daskcluster,
    "sparkjob": spark.sparkjob,
}

# Kinds that are not Kubernetes objects at all, and why.
NOT_RENDERED = {
    "dag": "a DAG is orchestrated by the reconciler itself: each of its operations is rendered as its own run",
}


def render(
    run: RunRequest, options: RenderOptions | None = None, run_env: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The manifests of `run`, in the order they should be applied; `run_env` is set in every
    main container (over the spec's own values of those names)."""
    kind = run.kind or str((run.effective.get("run") or {}).get("kind") or "")
    if kind in NOT_RENDERED:
        raise RenderError(f"{kind}: {NOT_RENDERED[kind]}")
    renderer = RENDERERS.get(kind)
    if renderer is None:
        raise RenderError(f"no renderer for run kind {kind!r}")
    try:
        return renderer(build(run, options or RenderOptions(), run_env))
    except RenderError as e:
        raise RenderError(f"{run.op}: {e}") from None
