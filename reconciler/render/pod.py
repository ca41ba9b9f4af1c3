"""One replica of a run (environment, init, container, sidecars, connections, volumes) as a pod.

Every run kind is made of replicas, so this is the one place that knows how Polyaxon's replica
sections become a pod spec; the kind renderers only decide where the pod templates go.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from reconciler.render import objects
from reconciler.render.context import Context, RenderError
from reconciler.render.templates import ARTIFACTS_PATH, CONTEXT_PATH

MAIN = "polyaxon-main"
CONTEXT_VOLUME = "plx-context"
_NOT_ENV = re.compile(r"[^A-Z0-9_]")

# Environment keys copied to the pod spec as they are (after key normalisation).
_POD_FIELDS = (
    "nodeSelector",
    "affinity",
    "tolerations",
    "nodeName",
    "serviceAccountName",
    "hostAliases",
    "securityContext",
    "hostNetwork",
    "hostPID",
    "dnsPolicy",
    "dnsConfig",
    "schedulerName",
    "priorityClassName",
    "priority",
)
_UNSUPPORTED_INIT = ("artifacts", "paths", "dockerfile", "tensorboard", "lineageRef", "modelRef", "artifactRef")


@dataclass
class Pod:
    """A pod template and the restart policy the user asked for (placed by the kind)."""

    template: dict[str, Any]
    restart_policy: str | None

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.template["spec"]
        return spec

    @property
    def main(self) -> dict[str, Any]:
        main: dict[str, Any] = self.spec["containers"][0]
        return main


def connection_env(name: str) -> str:
    return "POLYAXON_CONNECTION_" + _NOT_ENV.sub("_", name.upper())


def _connections(ctx: Context, names: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    env = [{"name": connection_env(n), "value": n} for n in names]
    env_from = [
        {"secretRef": {"name": ctx.options.connection_secrets[n]}} for n in names if n in ctx.options.connection_secrets
    ]
    return env, env_from


def _with_connections(ctx: Context, target: dict[str, Any], names: list[str]) -> None:
    env, env_from = _connections(ctx, names)
    objects.add_env(target, env)
    if env_from:
        target.setdefault("envFrom", []).extend(env_from)


_CONTEXT_MOUNT = {"name": CONTEXT_VOLUME, "mountPath": CONTEXT_PATH}


def _init_container(ctx: Context, entry: dict[str, Any], index: int) -> dict[str, Any]:
    """One `init` entry. Only what needs no Polyaxon artifacts store is supported: a container,
    a git clone and a file; the others say so instead of rendering something that cannot work."""
    default = f"init-{index}"
    unsupported = [k for k in _UNSUPPORTED_INIT if entry.get(k) is not None]
    if unsupported:
        raise RenderError(
            f"init.{unsupported[0]} needs Polyaxon's artifacts store, which the reconciler does not run; "
            "use init.git, init.file or init.container"
        )
    extra = entry.get("container") or {}
    if entry.get("git") is not None:
        git = entry["git"]
        url = str(git.get("url") or "")
        if not url:
            raise RenderError("init.git needs a url (connections of kind git are not resolved by the reconciler)")
        repo = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "repo"
        path = entry.get("path") or f"{ARTIFACTS_PATH}/{repo}"
        flags = " ".join(shlex.quote(str(f)) for f in git.get("flags") or [])
        script = f"git clone {flags + ' ' if flags else ''}{shlex.quote(url)} {shlex.quote(path)}"
        if git.get("revision"):
            script += f" && git -C {shlex.quote(path)} checkout {shlex.quote(str(git['revision']))}"
        base: dict[str, Any] = {
            "name": default,
            "image": ctx.options.git_image,
            "command": ["/bin/sh", "-c"],
            "args": [script],
        }
    elif entry.get("file") is not None:
        file = entry["file"]
        folder = entry.get("path") or ARTIFACTS_PATH
        target = f"{folder}/{file.get('filename') or 'file'}"
        script = f'mkdir -p {shlex.quote(folder)} && printf "%s" "$CONTENT" > {shlex.quote(target)}'
        if file.get("chmod"):
            script += f" && chmod {shlex.quote(str(file['chmod']))} {shlex.quote(target)}"
        base = {
            "name": default,
            "image": ctx.options.file_image,
            "command": ["/bin/sh", "-c"],
            "args": [script],
            "env": [{"name": "CONTENT", "value": str(file.get("content", ""))}],
        }
    elif extra:
        return _connected(ctx, objects.container(extra, default), entry)
    else:
        raise RenderError(f"init entry {index} has nothing to run")
    merged = {**base, **objects.container(extra, default)} if extra else base
    objects.add_mounts(merged, [dict(_CONTEXT_MOUNT)])
    return _connected(ctx, merged, entry)


def _connected(ctx: Context, target: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("connection"):
        _with_connections(ctx, target, [str(entry["connection"])])
    return target


def pod(
    ctx: Context,
    replica: dict[str, Any],
    *,
    main_name: str = MAIN,
    extra_labels: dict[str, str] | None = None,
) -> Pod:
    """The pod template of one replica; the main container comes first (KubeRay and Dask look
    for it at index 0), then the sidecars."""
    environment = replica.get("environment") or {}
    main_spec = replica.get("container")
    if not isinstance(main_spec, dict) or not main_spec:
        raise RenderError("a replica has no container to run")
    main = objects.container(main_spec, main_name)
    if ctx.run_env:  # ours, over the spec's (a run cannot be handed another run's token)
        main["env"] = [e for e in main.get("env", []) if not (isinstance(e, dict) and e.get("name") in ctx.run_env)]
        objects.add_env(main, [{"name": k, "value": v} for k, v in ctx.run_env.items()])
    objects.add_env(main, [{"name": k, "value": v} for k, v in ctx.env_params.items()])
    _with_connections(ctx, main, [str(c) for c in replica.get("connections") or []])
    containers = [main]
    for i, sidecar in enumerate(replica.get("sidecars") or []):
        containers.append(objects.container(sidecar, f"sidecar-{i}"))
    spec: dict[str, Any] = {}
    init = [_init_container(ctx, entry, i) for i, entry in enumerate(replica.get("init") or [])]
    volumes = [objects.k8s_object(v) for v in replica.get("volumes") or []]
    if any(CONTEXT_VOLUME in {m.get("name") for m in c.get("volumeMounts", [])} for c in init):
        volumes.append({"name": CONTEXT_VOLUME, "emptyDir": {}})
        objects.add_mounts(main, [dict(_CONTEXT_MOUNT)])
    if init:
        spec["initContainers"] = init
    spec["containers"] = containers
    if volumes:
        spec["volumes"] = volumes
    env = objects.k8s_object(environment)
    for key in _POD_FIELDS:
        if env.get(key) is not None:
            spec[key] = env[key]
    if env.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [{"name": s} if isinstance(s, str) else s for s in env["imagePullSecrets"]]
    labels = {str(k): str(v) for k, v in (env.get("labels") or {}).items()}
    labels.update(extra_labels or {})
    labels.update(ctx.labels())  # ownership labels win over the user's
    annotations = {str(k): str(v) for k, v in (env.get("annotations") or {}).items()}
    annotations.update(ctx.run.annotations())
    template = {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}
    return Pod(template, env.get("restartPolicy"))


def replica_count(replica: dict[str, Any], default: int = 1) -> int:
    value = replica.get("replicas")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RenderError(f"replicas must be a number after filling params, got {value!r}")
    return value
