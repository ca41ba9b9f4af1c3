"""Params that refer to other runs: `{{ ops.<name>.outputs.<x> }}` and `{ref: ops.<name>, value: outputs.<x>}`.

Event subscriptions and DAGs both fill a run's params from the outputs of an upstream run; this
module does it once for both, from a plain context dict, so the result is a function of the
upstream rows the tracking DB holds. Only the roots a caller names (`ops`, `runs`, `dag`) are
resolved here; runtime templates such as `{{ globals.uuid }}` are left as written for the
renderer, and a reference to a known root that cannot be resolved is an error, never an empty
string.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from reconciler.spec.io import Param

_TEMPLATE = re.compile(r"{{\s*(.+?)\s*}}")
_PATH = re.compile(r"^[A-Za-z_][-\w]*(\.[-\w]+)*$")


class RefError(ValueError):
    """A reference to an upstream run that the context cannot satisfy."""


def lookup(context: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` (`ops.train.outputs.loss`); op names may contain dashes."""
    current: Any = context
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            raise RefError(f"{'.'.join(walked)} is not available (while resolving {path})")
    return current


def _root(path: str) -> str:
    return path.split(".", 1)[0]


def render(value: Any, context: Mapping[str, Any], roots: Collection[str] | None = None) -> Any:
    """`value` with the templates whose root is in `roots` (default: the context's keys) resolved.

    A string that is one template becomes the referenced value with its type; templates inside
    longer strings are substituted as text. Dicts and lists are rendered item by item.
    """
    known = set(context) if roots is None else set(roots)
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole and _PATH.match(whole.group(1)) and _root(whole.group(1)) in known:
            return lookup(context, whole.group(1))

        def substitute(match: re.Match[str]) -> str:
            expr = match.group(1)
            if _PATH.match(expr) and _root(expr) in known:
                return str(lookup(context, expr))
            return match.group(0)

        return _TEMPLATE.sub(substitute, value)
    if isinstance(value, Mapping):
        return {k: render(v, context, known) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context, known) for v in value]
    return value


def resolve_param(param: Param, context: Mapping[str, Any], roots: Collection[str] | None = None) -> Any:
    """The value of one param; the full form `ref: ops.a` + `value: outputs.x` reads `ops.a.outputs.x`."""
    known = set(context) if roots is None else set(roots)
    if param.ref is not None:
        if _root(param.ref) not in known:
            return param.value
        assert isinstance(param.value, str)  # the spec model guarantees it
        return lookup(context, f"{param.ref}.{param.value}")
    return render(param.value, context, known)


def resolve_params(
    params: Mapping[str, Param], context: Mapping[str, Any], roots: Collection[str] | None = None
) -> dict[str, Any]:
    """All params resolved; raises `RefError` naming the param when one cannot be."""
    out: dict[str, Any] = {}
    for name, param in params.items():
        try:
            out[name] = resolve_param(param, context, roots)
        except RefError as e:
            raise RefError(f"param {name!r}: {e}") from None
    return out


def run_context(*, uuid: str, status: str, outputs: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What a template can read of one run."""
    return {"uuid": uuid, "status": status, "outputs": dict(outputs), "inputs": dict(inputs)}


__all__ = ["RefError", "lookup", "render", "resolve_param", "resolve_params", "run_context"]
