"""A pydantic validation error of a YAML file, as `file:line:col: message` lines.

The operator's settings file and a repo's `.polyaxon-reconciler.yaml` are both plain models with
snake_case keys read from YAML (polyaxonfiles have their own camelCase rules, in spec/load.py):
an unknown key names the keys its mapping allows, and every error points at its node."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from reconciler.errors import Located
from reconciler.yaml_nodes import Document


def located_errors(doc: Document, path: str, exc: ValidationError, root: type[BaseModel], stage: str) -> list[Located]:
    """Every error of `exc` (validating `doc` as `root`), placed in `doc`, ordered by position."""
    errors = [
        at(doc, path, tuple(e["loc"]), message(e, root), stage, key=e["type"] == "extra_forbidden")
        for e in exc.errors()
    ]
    return sorted(errors, key=lambda e: (e.line or 0, e.column or 0))


def at(doc: Document, path: str, loc: tuple[str | int, ...], text: str, stage: str, *, key: bool = False) -> Located:
    mark = doc.locate(loc, key=key)
    return Located(path, mark.line if mark else None, mark.column if mark else None, text, stage)


def message(err: Any, root: type[BaseModel]) -> str:
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        allowed = f" (allowed: {', '.join(parent.model_fields)})" if parent is not None else ""
        return f"unknown key {loc[-1]!r}{allowed}"
    text = str(err["msg"]).removeprefix("Value error, ")
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return f"{where}: {text}" if where else text


def model_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model whose fields `loc` (a pydantic error location) points into, if any."""
    current: type[BaseModel] | None = root
    keyed = False  # the next part is a dict's key or a list's index, not a field
    for part in loc:
        if current is None:
            return None
        if keyed or isinstance(part, int):
            keyed = False
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current, keyed = _model_in(field.annotation)
    return current


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (through Optional, list and dict), and whether a key comes first."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found[0] is not None:
                return found
        return None, False
    if origin in (list, tuple, set, frozenset, dict):
        model, _ = _model_in(get_args(annotation)[-1]) if get_args(annotation) else (None, False)
        return model, model is not None
    args = get_args(annotation)  # Annotated[X, ...]
    return _model_in(args[0]) if args else (None, False)


__all__ = ["at", "located_errors", "message", "model_at"]
