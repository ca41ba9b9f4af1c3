"""Outputs a local run reports about itself (metrics such as `loss`), read back by the reconciler.

A run finds the file in `$POLYAXON_RUN_OUTPUTS_PATH` and writes either one JSON object
(`{"loss": 0.1, "accuracy": 0.9}`) or JSON lines, each `{"name": "loss", "value": 0.1}` or an
object of several outputs. Later values win, so a training loop can append as it goes and the
last reported metric is the objective a tuner reads. A half-written last line (the process is
still writing) is ignored rather than failing the read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def parse_outputs(text: str) -> dict[str, Any]:
    stripped = text.strip()
    if not stripped:
        return {}
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        return _entry(whole)
    outputs: dict[str, Any] = {}
    for line in stripped.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict):
            outputs.update(_entry(item))
    return outputs


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    if set(item) == {"name", "value"} and isinstance(item["name"], str):
        return {item["name"]: item["value"]}
    return dict(item)


def read_outputs(path: Path) -> dict[str, Any]:
    try:
        return parse_outputs(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
