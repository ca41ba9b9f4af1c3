"""The libyaml fast path of the YAML reader gives the same values, positions and errors."""

from __future__ import annotations

import pytest
import yaml

from reconciler import yaml_nodes
from reconciler.yaml_nodes import YamlError, parse

SAMPLE = """\
version: 1.1
kind: operation
base: &base {image: "python:3.11", env: [{name: A, value: "1"}]}
run:
  kind: job
  container:
    <<: *base
    command: [python, -c, 'print("hi")']
    args: |
      multi
      line
when: 2024-01-01T00:00:00
ratio: 0.5
flag: yes
"""


def test_fast_loader_is_used_when_libyaml_is_present() -> None:
    assert yaml_nodes._FAST_LOADER is getattr(yaml, "CSafeLoader", None)


def test_same_document_from_both_parsers(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = parse(SAMPLE)
    monkeypatch.setattr(yaml_nodes, "_FAST_LOADER", None)
    slow = parse(SAMPLE)
    assert fast.value == slow.value
    assert fast.marks == slow.marks
    assert fast.key_marks == slow.key_marks


@pytest.mark.parametrize(
    "text",
    ["a:\n\tb: 1\n", "a: [1, 2\n", "a: b: c\n", "- a\nb: 1\n", "a: 'unterminated\n"],
)
def test_errors_keep_the_pure_python_messages_and_positions(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(YamlError) as fast:
        parse(text)
    monkeypatch.setattr(yaml_nodes, "_FAST_LOADER", None)
    with pytest.raises(YamlError) as slow:
        parse(text)
    assert (fast.value.message, fast.value.mark) == (slow.value.message, slow.value.mark)
