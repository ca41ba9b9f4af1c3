"""Runtime templates in the effective spec (`{{ params.lr }}`, `{{ globals.uuid }}`), filled at render time.

The spec hash is taken over the operation as written, templates unrendered (design.md §3), so
filling them is the renderer's job. Only what the reconciler knows is filled: params (inputs'
defaults, then the operation's params, then the run's own params) and a few globals. Anything
else (`{{ globals.owner_name }}`, filters, expressions) is left exactly as written, so a reader of
`reconciler render` sees what was not filled instead of a silent empty string.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

# Where Polyaxon mounts its context; kept so that specs written for Polyaxon find their files
# at the same paths (init git clones land under ARTIFACTS_PATH).
CONTEXT_PATH = "/plx-context"
ARTIFACTS_PATH = f"{CONTEXT_PATH}/artifacts"
_UUID_NAMESPACE = uuid.UUID("6f2b6a52-1d3e-4c1b-9a57-7a1d0b7c1e55")

_TEMPLATE = re.compile(r"{{\s*([^{}|]+?)\s*}}")
_PATH = re.compile(r"^([A-Za-z_][-\w]*)((?:\.[A-Za-z_][-\w]*|\[\d+\])*)$")
_STEP = re.compile(r"\.([A-Za-z_][-\w]*)|\[(\d+)\]")


def run_uuid(run_name: str) -> str:
    """A uuid derived from the run name: the same run renders the same `globals.uuid` everywhere."""
    return uuid.uuid5(_UUID_NAMESPACE, run_name).hex


def param_values(effective: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Input/output defaults, patched by the operation's params, patched by the run's params."""
    values: dict[str, Any] = {}
    for section in ("inputs", "outputs"):
        for io in effective.get(section) or []:
            if isinstance(io, dict) and "name" in io and io.get("value") is not None:
                values[io["name"]] = io["value"]
    for name, param in (effective.get("params") or {}).items():
        if isinstance(param, dict) and "value" in param and not param.get("ref"):
            values[name] = param["value"]
    values.update(overrides)
    return values


def globals_for(*, run_name: str, namespace: str, project: str, ports: list[Any]) -> dict[str, Any]:
    run_id = run_uuid(run_name)
    run_path = f"{ARTIFACTS_PATH}/{run_id}"
    return {
        "uuid": run_id,
        "run_uuid": run_id,
        "name": run_name,
        "run_name": run_name,
        "namespace": namespace,
        "project_name": project,
        "context_path": CONTEXT_PATH,
        "artifacts_path": ARTIFACTS_PATH,
        "run_artifacts_path": run_path,
        "run_outputs_path": f"{run_path}/outputs",
        "ports": ports,
        # Services are reached directly, not through Polyaxon's gateway, so they live at the root.
        "base_url": "/",
    }


_MISSING = object()


def _lookup(expr: str, context: Mapping[str, Any]) -> Any:
    match = _PATH.match(expr.strip())
    if not match:
        return _MISSING
    head, rest = match.group(1), match.group(2)
    steps = [(m.group(1), m.group(2)) for m in _STEP.finditer(rest)]
    if head == "params" and steps and steps[0][0]:
        head, steps = steps[0][0], steps[1:]
    if head == "globals":
        value: Any = context.get("globals", _MISSING)
    elif head in context.get("params", {}):
        value = context["params"][head]
    else:
        return _MISSING
    for key, index in steps:
        if key is not None and isinstance(value, Mapping) and key in value:
            value = value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return _MISSING
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def fill(value: Any, context: Mapping[str, Any]) -> Any:
    """`value` with every known template filled. A string that is one whole template takes the
    value's own type (`replicas: "{{ n }}"` becomes an int); inside text it becomes text."""
    if isinstance(value, dict):
        return {k: fill(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, context) for v in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    whole = _TEMPLATE.fullmatch(value.strip())
    if whole:
        found = _lookup(whole.group(1), context)
        return value if found is _MISSING else found

    def one(match: re.Match[str]) -> str:
        found = _lookup(match.group(1), context)
        return match.group(0) if found is _MISSING else _as_text(found)

    return _TEMPLATE.sub(one, value)
