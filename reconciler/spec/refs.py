"""Param references: what `{ref: ..., value: ...}` may name, as Polyaxon 2.18 checks it.

A param with a `ref` takes its value from another entity instead of giving one: `ref` says where
from (`dag`, `ops.<name>`, `runs.<uuid>`) and `value` says what (`outputs.loss`, `inputs`,
`artifacts.model`, `globals.uuid`, ...). Polyaxon checks both in two steps, and so do we:

- the form (`ref_form_error`), for every param that has a `ref`, declared or not, at the top level
  and in DAG operations alike; join params must take a string or a mapping;
- what the value names (`Context.missing`), for params that fill a declared input or output only:
  it must exist in the context the ref points at, with a compatible type. Nothing is known at the
  top level of a file, so there only values Polyaxon resolves later pass: `{{ ... }}` templates,
  `runs.<uuid>` refs and `artifacts.*` (logged at run time). Outputs are always checked that way,
  even inside a DAG.

The numbered rules are listed in tests/unit/spec/test_param_refs.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from reconciler.spec.base import PARAM_REGEX

# What a one-part value may name, and what may come before the dot of a two-part value.
VALUE_SECTIONS = ("inputs", "outputs", "io", "artifacts")
NESTED_SECTIONS = ("inputs", "outputs", "artifacts", "globals")
ENTITIES = ("ops", "runs")
PATH_LIKE = frozenset({"str", "path", "s3", "gcs", "wasb"})


def is_template(value: Any) -> bool:
    """A value written as `{{ ... }}`: resolved at run time, never checked against a context."""
    return isinstance(value, str) and PARAM_REGEX.search(value) is not None


def strip_template(value: str) -> str:
    match = PARAM_REGEX.search(value)
    return match.group(1).strip() if match else value


def value_form_error(value: str, ref: str | None) -> str | None:
    """Rules 2-6: the shape of what a referencing param takes (`outputs.loss`, `io`, ...)."""
    parts = [p.strip() for p in strip_template(value).split(".")]
    if len(parts) > 3:
        return f"value {value!r} has too many parts; expected e.g. outputs.loss or artifacts.<name>.<path>"
    if len(parts) == 1:
        if parts[0] not in VALUE_SECTIONS:
            return f"value {value!r} must name one of {', '.join(VALUE_SECTIONS)}, or a field of one (outputs.loss)"
        if ref == "dag" and parts[0] == "outputs":
            return "value 'outputs' cannot be taken from the current dag (ref: dag), which has no outputs yet"
    if len(parts) == 2 and parts[0] not in NESTED_SECTIONS:
        return f"value {value!r} must start with one of {', '.join(NESTED_SECTIONS)}"
    if len(parts) == 3 and parts[0] != "artifacts":
        return f"value {value!r}: only artifacts.<name>.<path> has three parts"
    return None


def ref_error(ref: str) -> str | None:
    """Rules 7-10: where a param takes its value from (`dag`, `ops.<name>`, `runs.<uuid>`)."""
    parts = ref.split(".")
    if len(parts) > 2 or (len(parts) == 1 and parts[0] != "dag"):
        return f"ref {ref!r} must be dag, ops.<name> or runs.<uuid>"
    if len(parts) == 2 and parts[0] not in ENTITIES:
        return f"ref {ref!r} must be dag, ops.<name> or runs.<uuid>"
    if parts[0] == "runs":
        try:
            uuid.UUID(parts[1])
        except ValueError:
            return f"ref {ref!r} must name a run by its uuid"
    return None


def ref_form_error(ref: str, value: str) -> str | None:
    return value_form_error(value, ref) or ref_error(ref)


def join_value_error(value: Any) -> str | None:
    """Rule 11: a join param takes a mapping (e.g. an artifacts spec) or a string like outputs.loss."""
    if isinstance(value, dict):
        return None
    if not isinstance(value, str):
        return f"a join param takes what to collect from each run (e.g. outputs.loss), got {value!r}"
    return value_form_error(value, None)


def entity_of(ref: str) -> str | None:
    """The op a `ops.<name>` ref names: an upstream edge in a DAG."""
    parts = ref.split(".")
    return parts[1] if parts[0] == "ops" and len(parts) > 1 else None


@dataclass(frozen=True)
class Typed:
    """What a context entry offers: its type and list-ness, as declared (None when unsaid)."""

    type: str | None
    is_list: bool | None = None


@dataclass
class Context:
    """Every `<ref>.<value>` a declared param may take, with its type (Polyaxon's DAG context)."""

    entries: dict[str, Typed] = field(default_factory=dict)

    def missing(self, ref: str, value: str, io_type: str | None, io_is_list: bool | None) -> str | None:
        """Rules 13-16: None when the ref resolves to something of a compatible type."""
        if is_template(value) or ref.split(".")[0] == "runs":
            return None
        stripped = strip_template(value)
        searchable = f"{ref}.{stripped}"
        found = self.entries.get(searchable)
        if found is None:
            if stripped.split(".")[0] == "artifacts":
                return None  # logged at run time
            return f"takes {stripped!r} from {ref!r}, which declares no such thing"
        if not (io_type == found.type or (io_type in PATH_LIKE and found.type in PATH_LIKE)):
            return f"is of type {io_type!r} but {searchable} is of type {found.type!r}"
        if io_is_list != found.is_list:
            return f"and {searchable} differ in being a list (isList: {io_is_list} and {found.is_list})"
        return None


EMPTY = Context()
