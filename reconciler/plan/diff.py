"""Field-level difference of two specs, for `~ update` lines a reviewer can read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.model import COSMETIC_FIELDS, canonical_json


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldChange:
    path: str  # dotted, with [i] for list items: run.container.image
    old: Any  # ABSENT when the field was added
    new: Any  # ABSENT when the field was removed

    def __str__(self) -> str:
        if self.old is ABSENT:
            return f"+ {self.path}: {_show(self.new)}"
        if self.new is ABSENT:
            return f"- {self.path}: {_show(self.old)}"
        return f"~ {self.path}: {_show(self.old)} -> {_show(self.new)}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.old is not ABSENT:
            out["old"] = self.old
        if self.new is not ABSENT:
            out["new"] = self.new
        return out


def _show(value: Any) -> str:
    return canonical_json(value)


def _join(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


def field_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """Leaf changes from `old` to `new`, in path order; cosmetic fields are left out."""
    out: list[FieldChange] = []
    before = {k: v for k, v in old.items() if k not in COSMETIC_FIELDS}
    after = {k: v for k, v in new.items() if k not in COSMETIC_FIELDS}
    _walk(before, after, "", out)
    return tuple(out)


def _walk(old: Any, new: Any, path: str, out: list[FieldChange]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            _walk(old.get(key, ABSENT), new.get(key, ABSENT), _join(path, key), out)
    elif (
        isinstance(old, Sequence)
        and isinstance(new, Sequence)
        and not isinstance(old, str)
        and not isinstance(new, str)
        and len(old) == len(new)
    ):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _walk(a, b, _join(path, i), out)
    elif old is ABSENT or new is ABSENT or canonical_json(old) != canonical_json(new):
        out.append(FieldChange(path or "(root)", old, new))
