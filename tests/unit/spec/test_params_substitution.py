"""Literal params are substituted into the parsing sections; run-time templates are left alone."""

from __future__ import annotations

import textwrap
from pathlib import Path

from reconciler.spec import validate_paths

OP = """\
kind: operation
name: nightly
params:
  retries: 3
  when: "0 3 * * *"
  image: python:3.12
termination: {maxRetries: "{{ retries }}"}
schedule: {kind: cron, cron: "{{ params.when }}"}
queue: "pool-{{ retries }}"
component:
  inputs:
    - {name: retries, type: int}
    - {name: when, type: str}
    - {name: image, type: str}
  run:
    kind: job
    container: {image: "{{ image }}", args: ["{{ globals.uuid }}"]}
"""


def test_parsing_sections_are_rendered_and_run_is_not(tmp_path: Path) -> None:
    path = tmp_path / "op.yaml"
    path.write_text(textwrap.dedent(OP))
    [result] = validate_paths([str(path)])
    assert result.valid, [str(e) for e in result.errors]
    assert result.checked is not None
    effective = result.checked.effective
    assert effective["termination"] == {"maxRetries": 3}
    assert effective["schedule"]["cron"] == "0 3 * * *"
    assert effective["queue"] == "pool-3"
    assert effective["run"]["container"] == {"image": "{{ image }}", "args": ["{{ globals.uuid }}"]}


def test_a_substituted_value_is_still_type_checked(tmp_path: Path) -> None:
    path = tmp_path / "op.yaml"
    path.write_text(
        textwrap.dedent(OP)
        .replace("retries: 3", 'retries: 3\n  bad: "x"')
        .replace('maxRetries: "{{ retries }}"', 'maxRetries: "{{ when }}"')
    )
    [result] = validate_paths([str(path)])
    assert not result.valid
