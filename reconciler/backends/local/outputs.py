"""Outputs a local run reports about itself (metrics such as `loss`), read back by the reconciler.

A run finds the file in `$POLYAXON_RUN_OUTPUTS_PATH` and writes either one JSON object
(`{"loss": 0.1, "accuracy": 0.9}`) or JSON lines, each `{"name": "loss", "value": 0.1}` or an
object of several outputs, either with an optional `"step"` (an integer). Later values win, so a
training loop can append as it goes and the last reported metric is the objective a tuner reads.

While the run lives, the backend reads the lines added since its last look (`read_new`): each
number is a metric value (plotted, judged by early stopping) and each value the latest of its
output. A half-written last line (the process is still writing) waits for the next look; once
the run has ended, the rest is read whatever its shape. `step` and `timestamp` are not outputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESERVED = frozenset({"step", "timestamp"})
NAME_MAX = 255
READ_MAX = 1024 * 1024  # read per look: a run that writes faster is read over several looks
HEAD_BYTES = 256


@dataclass
class Reported:
    """What a piece of the file said: outputs (latest value each) and metric values in order."""

    outputs: dict[str, Any] = field(default_factory=dict)
    points: list[tuple[str, int | None, float]] = field(default_factory=list)

    def add(self, item: dict[str, Any]) -> None:
        step = item.get("step")
        step = step if isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= 10**15 else None
        if isinstance(item.get("name"), str) and "value" in item and set(item) <= {"name", "value"} | RESERVED:
            values = {item["name"]: item["value"]}
        else:
            values = {k: v for k, v in item.items() if k not in RESERVED}
        for name, value in values.items():
            if not isinstance(name, str) or not 0 < len(name) <= NAME_MAX or not _finite(value):
                continue
            self.outputs[name] = value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.points.append((name, step, float(value)))


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _reported(text: str, whole_first: bool = True) -> Reported:
    found = Reported()
    stripped = text.strip()
    if not stripped:
        return found
    if whole_first:
        try:
            whole = json.loads(stripped)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            found.add(whole)
            return found
    for line in stripped.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict):
            found.add(item)
    return found


def parse_outputs(text: str) -> dict[str, Any]:
    return _reported(text).outputs


def read_outputs(path: Path) -> dict[str, Any]:
    try:
        return parse_outputs(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


@dataclass(frozen=True)
class Mark:
    """How far the file was read, and a digest of its first bytes: a file rewritten in place
    (`open(path, "w")`, whatever its new length) starts differently, and is read again."""

    offset: int = 0
    head: str = ""


def _head(handle: Any, upto: int) -> str:
    handle.seek(0)
    return hashlib.sha256(handle.read(min(upto, HEAD_BYTES))).hexdigest()[:16]


def read_new(path: Path, mark: Mark, ended: bool) -> tuple[Mark, Reported]:
    """What was added to the file since `mark`: the new mark and what it reported.

    Only whole lines while the run lives; everything once it `ended`. A file that was rewritten
    is read from its start. The file is the run's: it is opened without following a symbolic
    link, and read at most `READ_MAX` bytes at a time."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return mark, Reported()
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        offset = mark.offset
        if size < offset or (offset and _head(handle, offset) != mark.head):
            offset = 0
        handle.seek(offset)
        data = handle.read(READ_MAX)
        complete = ended and offset + len(data) >= size
        cut = len(data) if complete else data.rfind(b"\n") + 1
        if cut <= 0:
            return (mark if offset == mark.offset else Mark()), Reported()
        head = _head(handle, offset + cut)
    text = data[:cut].decode("utf-8", errors="replace")
    # A whole file written at once (one object, maybe over several lines) is one report.
    return Mark(offset + cut, head), _reported(text, whole_first=offset == 0)


__all__ = ["Mark", "Reported", "parse_outputs", "read_new", "read_outputs"]
