"""Kubernetes objects inside a polyaxonfile (containers, volumes, affinity, ...).

Two levels, so that we agree with Polyaxon on what is valid and still help more than it does:

- Errors: the object is not a mapping, or it has a top-level key the Kubernetes type does not
  have (Polyaxon rejects exactly these).
- Warnings (`lint()`): a deep check against the Kubernetes client's own models, e.g. an unknown
  key inside `configMap` or a misspelt probe field. Polyaxon accepts these files, so we do too,
  but say at which line the object will not mean what it looks like.

The models are read from `k8s_schema.json`, a digest of the Kubernetes client's models made by
`scripts/gen_k8s_schema.py` (fields, types, required), not from the client itself: importing the
client costs more than half a second, which `reconciler validate` should not pay. A unit test
holds the digest to the installed client.

The spec keeps each object exactly as written, so hashes and rendering see what the user wrote.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from pydantic import BeforeValidator
from pydantic.alias_generators import to_snake
from pydantic_core import PydanticCustomError

from reconciler.spec.base import PARAM_REGEX

SCHEMA_FILE = Path(__file__).with_name("k8s_schema.json")


class Field(NamedTuple):
    key: str  # as Kubernetes spells it (camelCase)
    name: str  # the client's Python name (snake_case), accepted too
    kind: str  # the client's type: str, int, bool, float, object, datetime, V1X, List[...], Dict[str, ...]
    required: bool


@functools.cache
def _models() -> dict[str, dict[str, Field]]:
    data = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return {
        model: {f[0]: Field(*f) for f in fields} | {f[1]: Field(*f) for f in fields}
        for model, fields in data["models"].items()
    }


def _top_level(model: str) -> Callable[[Any], Any]:
    def validate(value: Any) -> Any:
        if isinstance(value, str) and PARAM_REGEX.search(value):
            return value
        if not isinstance(value, dict):
            raise PydanticCustomError("k8s_type", "expected a mapping (Kubernetes {model})", {"model": model})
        known = _models()[model]
        for key in value:
            if not isinstance(key, str) or (key not in known and to_snake(key) not in known):
                raise PydanticCustomError(
                    "k8s",
                    "unknown field '{key}' (Kubernetes {model})",
                    {"key": key, "model": model, "subpath": [key], "is_key": True},
                )
        return value

    return validate


def _k8s(model: str) -> Any:
    return Annotated[dict[str, Any], BeforeValidator(_top_level(model))]


Container = _k8s("V1Container")
Volume = _k8s("V1Volume")
Affinity = _k8s("V1Affinity")
Toleration = _k8s("V1Toleration")
HostAlias = _k8s("V1HostAlias")
SecurityContext = _k8s("V1SecurityContext")
PodDNSConfig = _k8s("V1PodDNSConfig")
ResourceRequirements = _k8s("V1ResourceRequirements")
PodFailurePolicy = _k8s("V1PodFailurePolicy")
ExecAction = _k8s("V1ExecAction")
HTTPGetAction = _k8s("V1HTTPGetAction")


# --- deep lint ---------------------------------------------------------------------------------

_SINGLE = {
    "container": "V1Container",
    "affinity": "V1Affinity",
    "securityContext": "V1SecurityContext",
    "security_context": "V1SecurityContext",
    "dnsConfig": "V1PodDNSConfig",
    "dns_config": "V1PodDNSConfig",
    "podFailurePolicy": "V1PodFailurePolicy",
    "pod_failure_policy": "V1PodFailurePolicy",
}
_LISTS = {
    "sidecars": "V1Container",
    "volumes": "V1Volume",
    "tolerations": "V1Toleration",
    "hostAliases": "V1HostAlias",
    "host_aliases": "V1HostAlias",
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


_SCALARS: dict[str, tuple[Callable[[Any], bool], str]] = {
    # The client's models are strict: "1" is not an int, true is not an int.
    "str": (lambda v: isinstance(v, str), "Input should be a valid string"),
    "datetime": (lambda v: isinstance(v, str), "Input should be a valid datetime"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "Input should be a valid integer"),
    "bool": (lambda v: isinstance(v, bool), "Input should be a valid boolean"),
    "float": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "Input should be a valid number",
    ),
    "object": (lambda v: True, ""),
}
_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")


def _first_error(kind: str, value: Any) -> tuple[tuple[Any, ...], str] | None:
    """The first way `value` is not a `kind` (as the client's model would say), with its path."""
    if kind in _SCALARS:
        ok, message = _SCALARS[kind]
        return None if ok(value) else ((), message)
    if match := _LIST.match(kind):
        if not isinstance(value, list):
            return (), "Input should be a valid list"
        for i, item in enumerate(value):
            if (found := _first_error(match.group(1), item)) is not None:
                return (i, *found[0]), found[1]
        return None
    if match := _DICT.match(kind):
        if not isinstance(value, dict):
            return (), "Input should be a valid dictionary"
        for key, item in value.items():
            if (found := _first_error(match.group(1), item)) is not None:
                return (key, *found[0]), found[1]
        return None
    fields = _models().get(kind)
    if fields is None:
        return None  # a type the digest does not describe: nothing to say
    if not isinstance(value, dict):
        return (), f"Input should be a valid dictionary or instance of {kind}"
    for key, item in value.items():
        field = fields.get(key) if isinstance(key, str) else None
        if field is None:
            return (key,), "Extra inputs are not permitted"
        if (found := _first_error(field.kind, item)) is not None:
            return (key, *found[0]), found[1]
    given = set(value)
    for field in fields.values():
        if field.required and field.key not in given and field.name not in given:
            return (field.key,), "Field required"
    return None


def _check(model: str, value: Any) -> tuple[tuple[Any, ...], str] | None:
    if not isinstance(value, dict):
        return None
    probe = _relax(copy.deepcopy(value))
    if model == "V1Container":
        probe = _container_shorthands(probe)
    found = _first_error(model, probe)
    if found is None:
        return None
    return found[0], f"{found[1]} (Kubernetes {model})"


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
