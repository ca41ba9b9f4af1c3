"""YAML loading that keeps positions: values, index, and refusals with line and column."""

from __future__ import annotations

from reconciler.errors import Located
from reconciler.yaml_nodes import Doc, load

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
    doc = load(TEXT, "f.yaml")
    assert isinstance(doc, Doc)
    assert doc.value == {"top": 1, "nested": {"list": ["a", {"key": "v"}], "other": "x"}, "alias": "x"}
    assert doc.position(("top",)) == (1, 6)
    assert doc.position(("nested", "list", 1, "key")) == (5, 12)
    assert doc.position(("nested", "list", 1, "key"), at_key=True) == (5, 7)
    assert doc.position(("nested", "missing")) == (3, 3)  # nearest written ancestor
    assert doc.error(("nested", "list", 0), "bad", stage="s") == Located("f.yaml", 4, 7, "bad", "s")


def test_empty_document() -> None:
    doc = load(b"# only a comment\n", "f.yaml")
    assert isinstance(doc, Doc) and doc.value is None


def test_duplicate_keys_at_any_depth() -> None:
    errors = load(b"a:\n  b: 1\n  c: 2\n  b: 3\n", "f.yaml")
    assert errors == [Located("f.yaml", 4, 3, "duplicate key 'b' (first defined on line 2)", "yaml")]


def test_merge_keys_are_not_duplicates() -> None:
    doc = load(b"base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n", "f.yaml")
    assert isinstance(doc, Doc) and doc.value["use"] == {"x": 1, "y": 2}


def test_second_document_is_refused_where_it_starts() -> None:
    errors = load(b"a: 1\n---\nb: 2\n", "f.yaml")
    assert isinstance(errors, list) and [(e.line, e.column) for e in errors] == [(2, 1)]
    assert "one YAML document" in errors[0].message


def test_tabs_in_indentation_are_refused_on_each_line() -> None:
    errors = load(b"a:\n\tb: 1\nc:\n  \td: 2\n", "f.yaml")
    assert isinstance(errors, list)
    assert [(e.line, e.column) for e in errors] == [(2, 1), (4, 3)]


def test_tabs_allowed_when_asked_still_located_by_the_parser() -> None:
    errors = load(b"a:\n\tb: 1\n", "f.yaml", reject_tabs=False)
    assert isinstance(errors, list) and errors[0].line == 2
    assert "tab" in errors[0].message


def test_syntax_error_is_located() -> None:
    errors = load(b"a: [1, 2\nb: 3\n", "f.yaml")
    assert isinstance(errors, list) and errors[0].path == "f.yaml" and errors[0].line == 2


def test_not_utf8() -> None:
    errors = load(b"a: \xff\n", "f.yaml")
    assert isinstance(errors, list) and "UTF-8" in errors[0].message and errors[0].line is None
