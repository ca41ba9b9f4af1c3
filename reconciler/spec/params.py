"""Substitute literal params into the sections Polyaxon resolves at compile time.

Polyaxon renders `{{ params.x }}` (or `{{ x }}`) in the "parsing sections" (termination, schedule,
matrix, cache, plugins, queue, ...) when it compiles an operation, and leaves the `run` section
and runtime templates (`{{ globals.uuid }}`, `{{ ops.a.outputs.b }}`) for run time. We do the
same, so the spec hash changes when a param changes a schedule but not when a run-time value would.
"""

from __future__ import annotations

import re
from typing import Any

PARSING_SECTIONS = (
    "isApproved",
    "matrix",
    "presets",
    "cost",
    "queue",
    "cache",
    "connections",
    "plugins",
    "namespace",
    "termination",
    "schedule",
    "dependencies",
    "trigger",
    "conditions",
    "mount",
    "skipOnUpstreamSkip",
    "patchStrategy",
)

_WHOLE = re.compile(r"^\s*{{\s*(?:params\.)?([A-Za-z_][A-Za-z0-9_]*)\s*}}\s*$")
_EMBEDDED = re.compile(r"{{\s*(?:params\.)?([A-Za-z_][A-Za-z0-9_]*)\s*}}")


def literal_params(effective: dict[str, Any]) -> dict[str, Any]:
    """Values known at compile time: input/output defaults, overridden by literal params."""
    values: dict[str, Any] = {}
    for section in ("inputs", "outputs"):
        for io in effective.get(section) or []:
            if isinstance(io, dict) and io.get("value") is not None:
                values[io["name"]] = io["value"]
    for name, param in (effective.get("params") or {}).items():
        if isinstance(param, dict) and param.get("ref") is None:
            value = param.get("value")
            if value is not None and not (isinstance(value, str) and "{{" in value):
                values[name] = value
    return values


def _render(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            return str(values[name]) if name in values else match.group(0)

        return _EMBEDDED.sub(replace, value)
    if isinstance(value, dict):
        return {k: _render(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, values) for v in value]
    return value


def substitute_params(effective: dict[str, Any]) -> dict[str, Any]:
    values = literal_params(effective)
    if not values:
        return effective
    out = dict(effective)
    for section in PARSING_SECTIONS:
        if section in out:
            out[section] = _render(out[section], values)
    return out
