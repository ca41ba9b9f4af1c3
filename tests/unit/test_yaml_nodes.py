"""YAML reading that keeps positions: values, the position index, and refusals with a location."""

from __future__ import annotations

import pytest

from reconciler.yaml_nodes import Mark, YamlError, parse

TEXT = b"""\
top: 1
nested:
  list:
    - a
    - key: v
  other: &anchor x
alias: *anchor
"""


def test_values_and_positions() -> None:
    doc = parse(TEXT)
    assert doc.value == {"top": 1, "nested": {"list": ["a", {"key": "v"}], "other": "x"}, "alias": "x"}
    assert doc.locate(("top",)) == Mark(1, 6)
    assert doc.locate(("nested", "list", 1, "key")) == Mark(5, 12)
    assert doc.locate(("nested", "list", 1, "key"), key=True) == Mark(5, 7)
    assert doc.locate(("nested", "missing")) == Mark(3, 3)  # nearest written ancestor


def test_empty_document_when_allowed() -> None:
    assert parse(b"# only a comment\n", allow_empty=True).value is None
    with pytest.raises(YamlError, match="empty file"):
        parse(b"# only a comment\n")


def test_duplicate_keys_at_any_depth() -> None:
    with pytest.raises(YamlError) as info:
        parse(b"a:\n  b: 1\n  c: 2\n  b: 3\n")
    assert info.value.mark == Mark(4, 3)
    assert info.value.message == "duplicate key 'b' (first defined on line 2)"


def test_merge_keys_are_not_duplicates() -> None:
    doc = parse(b"base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n  x: 3\n")
    assert doc.value["use"] == {"x": 3, "y": 2}


def test_second_document_is_refused_where_it_starts() -> None:
    with pytest.raises(YamlError, match="one YAML document") as info:
        parse(b"a: 1\n---\nb: 2\n")
    assert info.value.mark is not None and info.value.mark.line == 3


def test_syntax_error_is_located() -> None:
    with pytest.raises(YamlError) as info:
        parse(b"a: [1, 2\nb: 3\n")
    assert info.value.mark is not None and info.value.mark.line == 2
