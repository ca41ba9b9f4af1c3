"""Kubernetes objects as users write them, made into what the API server accepts.

Polyaxon lets users write Kubernetes objects loosely: snake_case keys (`node_affinity`), a
command as one string, `env` as a mapping, numbers as quantities. The API server accepts none of
these, so every object taken from the spec goes through `k8s_object`/`container` once.
"""

from __future__ import annotations

import re
from typing import Any

# Maps whose keys are user data (label names, resource names, file names), never field names.
_OPAQUE_MAPS = {
    "labels",
    "annotations",
    "nodeSelector",
    "matchLabels",
    "limits",
    "requests",
    "data",
    "binaryData",
    "stringData",
    "volumeAttributes",
    "capacity",
    "hard",
}
_SNAKE = re.compile(r"_([a-z0-9])")


def camel(key: str) -> str:
    if "_" not in key or key.startswith("_"):
        return key
    return _SNAKE.sub(lambda m: m.group(1).upper(), key)


def _quantities(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for k, v in value.items()}
    return value


def k8s_object(value: Any) -> Any:
    """Field names in camelCase, recursively, leaving the keys of user-data maps alone."""
    if isinstance(value, list):
        return [k8s_object(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = camel(key) if isinstance(key, str) else key
        if name in ("limits", "requests"):
            out[name] = _quantities(item)
        elif name in _OPAQUE_MAPS:
            out[name] = item
        else:
            out[name] = k8s_object(item)
    return out


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def env_list(env: Any) -> list[Any]:
    """`env` as Kubernetes wants it: a list of {name, value|valueFrom}, values as strings."""
    if isinstance(env, dict):
        return [{"name": str(k), "value": _env_value(v)} for k, v in env.items()]
    out: list[Any] = []
    for entry in env or []:
        if isinstance(entry, dict) and "value" in entry and not isinstance(entry["value"], str):
            entry = {**entry, "value": _env_value(entry["value"])}
        out.append(entry)
    return out


def container(value: dict[str, Any], default_name: str) -> dict[str, Any]:
    """One container, normalised; unnamed containers get `default_name`."""
    raw = dict(value)
    env = raw.pop("env", None)
    out = k8s_object(raw)
    for field in ("command", "args"):
        if isinstance(out.get(field), str):
            out[field] = [out[field]]
        elif isinstance(out.get(field), list):
            out[field] = [item if isinstance(item, str) else _env_value(item) for item in out[field]]
    if env is not None:
        out["env"] = k8s_object(env_list(env))
    out.setdefault("name", default_name)
    # Name first: that is how people read a container.
    return {"name": out.pop("name"), **out}


def add_env(target: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """Append env entries unless the container already sets that name (the user's value wins)."""
    if not entries:
        return
    env = target.setdefault("env", [])
    have = {e.get("name") for e in env if isinstance(e, dict)}
    env.extend(e for e in entries if e["name"] not in have)


def add_mounts(target: dict[str, Any], mounts: list[dict[str, Any]]) -> None:
    if not mounts:
        return
    existing = target.setdefault("volumeMounts", [])
    have = {m.get("mountPath") for m in existing if isinstance(m, dict)}
    existing.extend(m for m in mounts if m["mountPath"] not in have)
