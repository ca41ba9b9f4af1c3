"""`{{ ... }}` substitution for local runs, without a template engine.

Polyaxon renders its context with Jinja at run time. A local process only needs the lookups
polyaxonfiles actually use in commands, args, env and working dirs: `{{ lr }}`,
`{{ params.lr }}`, `{{ params.lr.value }}`, `{{ params.lr.as_arg }}`, `{{ globals.uuid }}`,
`{{ connections['x'].url }}`. Anything else (filters, arithmetic) is reported as an error instead
of being passed to the process half-rendered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.DOTALL)
_PART = re.compile(r"""\.?([A-Za-z_][\w-]*)|\[\s*(?:'([^']*)'|"([^"]*)"|([\w.-]+))\s*\]""")


class TemplateError(ValueError):
    """A `{{ }}` expression the local backend cannot render."""


def as_text(value: Any) -> str:
    """How a value appears inside a string; as Jinja prints Python values."""
    return str(value)


def lookup(expression: str, context: Mapping[str, Any]) -> Any:
    """The value of a dotted/subscripted name such as `params.lr.value` or `init['x'].url`."""
    position = 0
    current: Any = context
    path: list[str] = []
    while position < len(expression):
        match = _PART.match(expression, position)
        if match is None or (position == 0 and match.group(0).startswith((".", "["))):
            raise TemplateError(f"unsupported template expression {{{{ {expression} }}}}")
        key = next(g for g in match.groups() if g is not None)
        path.append(key)
        if isinstance(current, Mapping) and key in current:
            current = current[key]
        else:
            raise TemplateError(f"unknown template variable {'.'.join(path)!r} in {{{{ {expression} }}}}")
        position = match.end()
    return current


def render(text: str, context: Mapping[str, Any]) -> str:
    """`text` with every `{{ expression }}` replaced by its value."""
    return _TEMPLATE.sub(lambda m: as_text(lookup(m.group(1), context)), text)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside `value` (lists and dicts walked); other values unchanged."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    return value
