"""Kubernetes objects inside a polyaxonfile (containers, volumes, affinity, ...).

Two levels, so that we agree with Polyaxon on what is valid and still help more than it does:

- Errors: the object is not a mapping, or it has a top-level key the Kubernetes type does not
  have (Polyaxon rejects exactly these).
- Warnings (`lint()`): a deep check against the Kubernetes client's own models, e.g. an unknown
  key inside `configMap` or a misspelt probe field. Polyaxon accepts these files, so we do too,
  but say at which line the object will not mean what it looks like.

The spec keeps each object exactly as written, so hashes and rendering see what the user wrote.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import kubernetes.client as k8s
from pydantic import BeforeValidator, ValidationError
from pydantic.alias_generators import to_snake
from pydantic_core import PydanticCustomError

from reconciler.spec.base import PARAM_REGEX


def _field_names(model: type[Any]) -> set[str]:
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(name)
        if info.alias:
            names.add(info.alias)
    return names


def _top_level(model: type[Any]) -> Callable[[Any], Any]:
    known = _field_names(model)

    def validate(value: Any) -> Any:
        if isinstance(value, str) and PARAM_REGEX.search(value):
            return value
        if not isinstance(value, dict):
            raise PydanticCustomError("k8s_type", "expected a mapping (Kubernetes {model})", {"model": model.__name__})
        for key in value:
            if not isinstance(key, str) or (key not in known and to_snake(key) not in known):
                raise PydanticCustomError(
                    "k8s",
                    "unknown field '{key}' (Kubernetes {model})",
                    {"key": key, "model": model.__name__, "subpath": [key]},
                )
        return value

    return validate


def _k8s(model: type[Any]) -> Any:
    return Annotated[dict[str, Any], BeforeValidator(_top_level(model))]


Container = _k8s(k8s.V1Container)
Volume = _k8s(k8s.V1Volume)
Affinity = _k8s(k8s.V1Affinity)
Toleration = _k8s(k8s.V1Toleration)
HostAlias = _k8s(k8s.V1HostAlias)
SecurityContext = _k8s(k8s.V1SecurityContext)
PodDNSConfig = _k8s(k8s.V1PodDNSConfig)
ResourceRequirements = _k8s(k8s.V1ResourceRequirements)
PodFailurePolicy = _k8s(k8s.V1PodFailurePolicy)
ExecAction = _k8s(k8s.V1ExecAction)
HTTPGetAction = _k8s(k8s.V1HTTPGetAction)


# --- deep lint ---------------------------------------------------------------------------------

_SINGLE = {
    "container": k8s.V1Container,
    "affinity": k8s.V1Affinity,
    "securityContext": k8s.V1SecurityContext,
    "security_context": k8s.V1SecurityContext,
    "dnsConfig": k8s.V1PodDNSConfig,
    "dns_config": k8s.V1PodDNSConfig,
    "podFailurePolicy": k8s.V1PodFailurePolicy,
    "pod_failure_policy": k8s.V1PodFailurePolicy,
}
_LISTS = {
    "sidecars": k8s.V1Container,
    "volumes": k8s.V1Volume,
    "tolerations": k8s.V1Toleration,
    "hostAliases": k8s.V1HostAlias,
    "host_aliases": k8s.V1HostAlias,
}
# Sections whose contents are user data, not spec.
_OPAQUE = {
    "params",
    "inputs",
    "outputs",
    "matrix",
    "joins",
    "runtimeEnv",
    "runtime_env",
    "metadata",
    "labels",
    "annotations",
    "nodeSelector",
    "node_selector",
}


def _has_template(value: Any) -> bool:
    return isinstance(value, str) and bool(PARAM_REGEX.search(value))


def _relax(value: Any) -> Any:
    """Forms Polyaxon users write that Kubernetes spells differently, and values set by templates."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if _has_template(item):
                continue
            if key in ("limits", "requests") and isinstance(item, dict):
                item = {
                    k: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                    for k, v in item.items()
                    if not _has_template(v)
                }
            out[key] = _relax(item)
        return out
    if isinstance(value, list):
        return [_relax(v) for v in value if not _has_template(v) or isinstance(v, str)]
    return value


def _container_shorthands(value: dict[str, Any]) -> dict[str, Any]:
    value = dict(value)
    value.setdefault("name", "main")
    for field in ("command", "args"):
        if isinstance(value.get(field), str):
            value[field] = [value[field]]
    if isinstance(value.get("env"), dict):
        value["env"] = [{"name": k, "value": str(v)} for k, v in value["env"].items()]
    return value


def _check(model: type[Any], value: Any) -> tuple[tuple[Any, ...], str] | None:
    if not isinstance(value, dict):
        return None
    probe = _relax(copy.deepcopy(value))
    if model is k8s.V1Container:
        probe = _container_shorthands(probe)
    try:
        model.model_validate(probe)
    except ValidationError as e:
        first = e.errors()[0]
        loc = tuple(k for k in first["loc"] if not (isinstance(k, str) and re.search(r"[\[\]-]", k)))
        return loc, f"{first['msg']} (Kubernetes {model.__name__})"
    return None


def lint(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Deep-check every Kubernetes object in a document: yields (path, message) warnings."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from lint(item, (*path, i))
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if key in _OPAQUE:
            continue
        here = (*path, key)
        if key in _SINGLE and isinstance(item, dict):
            found = _check(_SINGLE[key], item)
            if found:
                yield (*here, *found[0]), found[1]
            continue
        if key in _LISTS and isinstance(item, list):
            for i, entry in enumerate(item):
                found = _check(_LISTS[key], entry)
                if found:
                    yield (*here, i, *found[0]), found[1]
            continue
        yield from lint(item, here)
