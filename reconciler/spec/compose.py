"""Compile stage: an operation and the component it references become one effective spec.

Works on plain dicts (the spec as written, camelCase keys), so the result is a pure function of
the files, easy to hash and to compare with Polyaxon's own `compile_operation`.

Order, as in Polyaxon: the component chain is composed first; the operation's own fields patch it
with its `patchStrategy` (post_merge by default); the shortcuts (`container`, `cmd`, `env`,
`resources`, `ports`, `environment`, `init`, `connections`, `sidecars`, `volumes`) patch the run;
then `runPatch`.
"""

from __future__ import annotations

from typing import Any

from reconciler.spec.polyaxonfile import Polyaxonfile
from reconciler.spec.runs import RUN_MODELS

STRATEGIES = ("replace", "isnull", "post_merge", "pre_merge")
# Fields that say where the run comes from, and the shortcuts that patch the run: consumed by
# composition, never copied into the effective operation.
_REFERENCES = ("component", "hubRef", "pathRef", "urlRef", "dagRef", "isPreset", "patchStrategy", "runPatch")
_SHORTCUTS = (
    "container",
    "cmd",
    "env",
    "resources",
    "ports",
    "environment",
    "init",
    "connections",
    "sidecars",
    "volumes",
)
_NOT_PATCHED = {*_REFERENCES, *_SHORTCUTS, "run", "strictParams", "version"}
_DAG_NODE_FIELDS = (
    "name",
    "dependencies",
    "trigger",
    "conditions",
    "joins",
    "skipOnUpstreamSkip",
    "schedule",
)


class ComposeError(ValueError):
    """A compile-stage error, with the key path (as written) it concerns."""

    def __init__(self, message: str, where: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.where = where


def _copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (what the spec dumps to): `copy.deepcopy` without its
    memo and type dispatch, which was a fifth of compiling a large repo."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def merge(current: Any, value: Any, strategy: str) -> Any:
    """Patch `current` with `value` the way Polyaxon's patch strategies do.

    Mappings (sections, Kubernetes objects) are patched key by key; the strategy decides at the
    leaves: `replace` takes the new value, `isnull` keeps a set one, `post_merge` lets the new
    value win and appends new list items, `pre_merge` lets the current value win and prepends.
    """
    if value is None:
        return current
    if current is None:
        return _copy(value)
    if isinstance(current, dict) and isinstance(value, dict):
        out = dict(current)
        for key, item in value.items():
            out[key] = merge(current.get(key), item, strategy)
        return out
    if strategy == "replace":
        return _copy(value)
    if strategy == "isnull":
        return current
    post = strategy == "post_merge"
    if isinstance(current, list) and isinstance(value, list):
        if post:
            return current + [_copy(i) for i in value if i not in current]
        return _copy(value) + [i for i in current if i not in value]
    return _copy(value) if post else current


def _dump(spec: Polyaxonfile) -> dict[str, Any]:
    data = spec.model_dump(by_alias=True, exclude_unset=True, exclude={"component"}, mode="json")
    return data


def _replicas(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod-running units of a run, in place, for shortcuts and patches."""
    model = RUN_MODELS.get(run.get("kind", ""))
    if model is None or not model.REPLICAS:
        return [run]
    out: list[dict[str, Any]] = []
    for name in model.REPLICAS:
        key = _camel(name)
        replica = run.get(key)
        if name == "workers" and isinstance(replica, dict):
            out += [r for r in replica.values() if isinstance(r, dict)]
        elif isinstance(replica, dict):
            out.append(replica)
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


_REPLICA_KEYS = {"environment", "connections", "volumes", "init", "sidecars", "container", "replicas"}


def _run_fields(model: Any) -> set[str]:
    return {f.alias or n for n, f in model.model_fields.items()} | set(model.model_fields)


def _patch_run(run: dict[str, Any], patch: dict[str, Any], strategy: str) -> dict[str, Any]:
    """Apply a run patch; for distributed kinds a replica-shaped patch goes to every replica."""
    model = RUN_MODELS.get(run.get("kind", ""))
    patch = {k: v for k, v in patch.items() if k != "kind"}
    per_replica = (
        model is not None
        and bool(model.REPLICAS)
        and bool(patch)
        and set(patch) <= _REPLICA_KEYS
        and bool(set(patch) - _run_fields(model))
    )
    if per_replica:
        out: dict[str, Any] = _copy(run)
        for replica in _replicas(out):
            replica.update(merge(replica, patch, strategy))
        return out
    merged = merge(run, patch, strategy)
    return merged if isinstance(merged, dict) else run


def _shortcuts(local: dict[str, Any], run: dict[str, Any] | None, strategy: str) -> dict[str, Any] | None:
    """Apply the operation's shortcut fields to the run, in Polyaxon's order."""
    if "ports" in local:
        run = _patch_run(run or {"kind": "service"}, {"ports": local["ports"]}, strategy)
    if "container" in local:
        run = _patch_run(run or {"kind": "job"}, {"container": local["container"]}, strategy)
    if local.get("cmd"):
        lines = [local["cmd"]] if isinstance(local["cmd"], str) else local["cmd"]
        pair = {"command": ["/bin/sh", "-c"], "args": ["\n".join(["set -e", *lines])]}
        if run is not None and strategy in ("pre_merge", "isnull"):
            # A command the component already sets wins; `cmd` only fills containers without one.
            run = _copy(run)
            for replica in _replicas(run):
                container = replica.get("container")
                if isinstance(container, dict) and container.get("command") is None and container.get("args") is None:
                    container.update(_copy(pair))
                elif container is None:
                    replica["container"] = _copy(pair)
        else:
            run = _patch_run(run or {"kind": "job"}, {"container": pair}, "replace")
    patches: list[dict[str, Any]] = []
    if local.get("env") is not None:
        entries = [{"name": k, "value": v} for k, v in local["env"].items()]
        if run is None or strategy not in ("post_merge", "pre_merge"):
            patches.append({"container": {"env": entries}})
        else:
            run = _copy(run)
            for replica in _replicas(run):
                container = replica.setdefault("container", {})
                if not isinstance(container, dict):
                    continue
                original = container.get("env")
                if original is not None and not isinstance(original, list):
                    continue
                ordered = (original or []) + entries if strategy == "post_merge" else entries + (original or [])
                container["env"] = _dedupe_env(ordered)
    if local.get("resources") is not None:
        patches.append({"container": {"resources": lower_resources(local["resources"])}})
    for key in ("environment", "init", "connections", "sidecars", "volumes"):
        if local.get(key) is not None:
            patches.append({key: local[key]})
    for patch in patches:
        run = _patch_run(run or {"kind": "job"}, patch, strategy)
    return run


def _dedupe_env(entries: list[Any]) -> list[Any]:
    """One entry per variable name; the later entry wins and keeps its place."""
    seen: set[str] = set()
    out: list[Any] = []
    for entry in reversed(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if name is not None:
            if name in seen:
                continue
            seen.add(name)
        out.append(entry)
    return out[::-1]


def lower_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """`{cpu: "1..2", memory: 1Gi, gpu: 1}` -> Kubernetes requests and limits."""
    out: dict[str, dict[str, Any]] = {"requests": {}, "limits": {}}
    for key, value in resources.items():
        name = "nvidia.com/gpu" if key == "gpu" else key
        is_count = key not in ("cpu", "memory")
        if isinstance(value, str) and ".." in value:
            low, high = (p.strip() for p in value.split("..", 1))
            if low:
                out["requests"][name] = int(low) if is_count else low
            if high:
                out["limits"][name] = int(high) if is_count else high
            continue
        if isinstance(value, str) and is_count:
            value = int(value)
        out["requests"][name] = value
        if is_count:
            out["limits"][name] = value
    return {k: v for k, v in out.items() if v}


def compose(
    spec: Polyaxonfile,
    *,
    is_dag_node: bool = False,
    components: dict[str, Polyaxonfile] | None = None,
    _seen: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The effective polyaxonfile (as a dict) of `spec` with its component chain applied."""
    component = spec.component
    if component is None and spec.dag_ref and components is not None:
        if spec.dag_ref in _seen:
            raise ComposeError(f"component reference cycle: {' -> '.join((*_seen, spec.dag_ref))}", ("dagRef",))
        if spec.dag_ref not in components:
            raise ComposeError(
                f"op {spec.name!r} requires a component named {spec.dag_ref!r}, which this DAG does not define",
                ("dagRef",),
            )
        component = components[spec.dag_ref]
        _seen = (*_seen, spec.dag_ref)
    effective = compose(component, components=components, _seen=_seen) if component is not None else {}
    if component is None and spec.reference is not None:
        raise ComposeError(f"{spec.reference[0]} {spec.reference[1]!r} was not resolved")
    # A fresh dump: each of its values lands in `effective` at most once, so none is copied.
    local = _dump(spec)
    if is_dag_node and spec.schedule is not None:
        raise ComposeError(f"DAG node {spec.name!r} cannot define a schedule", ("schedule",))
    strategy = spec.patch_strategy or "post_merge"
    strict = bool(effective.get("strictParams")) or bool(local.get("strictParams"))
    for key, value in local.items():
        if key in _NOT_PATCHED or key == "kind":
            continue
        effective[key] = merge(effective.get(key), value, strategy)
    if strict:
        effective["strictParams"] = True
    if "version" not in effective and "version" in local:
        effective["version"] = local["version"]
    run = effective.get("run")
    if "run" in local:
        local_run = local["run"]
        if local_run is None:
            # An explicit `run: null` is a value like any other: it wins where the operation's
            # values win (Polyaxon then finds no run), and is ignored where the component's do.
            if strategy in ("post_merge", "replace"):
                run = None
        elif run is None:
            run = local_run
        elif local_run.get("kind", run.get("kind")) == run.get("kind"):
            run = _patch_run(run, local_run, strategy)
        elif strategy in ("post_merge", "replace"):
            run = local_run
    run = _shortcuts(local, run, strategy)
    if local.get("runPatch"):
        if run is None:
            raise ComposeError("runPatch needs a run: the component has none", ("runPatch",))
        run = _patch_run(run, local["runPatch"], strategy)
    if run is not None:
        effective["run"] = run
    else:
        effective.pop("run", None)
    if is_dag_node:
        for key in _DAG_NODE_FIELDS:
            if key in local:
                effective[key] = local[key]
            else:
                effective.pop(key, None)
    for key in (*_REFERENCES, *_SHORTCUTS):
        effective.pop(key, None)
    return effective
