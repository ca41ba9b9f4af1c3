"""Hostile or broken input gets a located error in bounded time and memory, never a traceback."""

from __future__ import annotations

import pytest

from reconciler.spec import load
from reconciler.yaml_nodes import MAX_BYTES


def errors_of(text: bytes | str, path: str = "f.yaml") -> list[str]:
    result = load(path, text)
    assert result.spec is None, "expected the file to be rejected"
    assert result.errors, "a rejected file must say why"
    return [str(e) for e in result.errors]


def test_alias_bomb_is_stopped_early() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    [message] = errors_of("\n".join(lines) + "\n")
    assert "alias bomb" in message
    assert message.startswith("f.yaml:")


def test_recursive_alias() -> None:
    [message] = errors_of("a: &a [*a]\n")
    assert "recursive alias" in message


def test_file_over_size_limit() -> None:
    [message] = errors_of(b"a: " + b"x" * (MAX_BYTES + 1))
    assert "larger than" in message


def test_deep_nesting() -> None:
    text = "a: " + "[" * 200 + "]" * 200 + "\n"
    [message] = errors_of(text)
    assert "deeper than" in message


def test_binary_content() -> None:
    [message] = errors_of(b"kind: component\x00\x01\x02")
    assert "binary" in message


def test_non_utf8() -> None:
    [message] = errors_of(b"kind: component\nname: \xff\xfe\n")
    assert "UTF-8" in message


def test_tabs_for_indentation() -> None:
    [message] = errors_of("kind: component\nrun:\n\tkind: job\n")
    assert message.startswith("f.yaml:3:1:")
    assert "tabs" in message


def test_duplicate_keys() -> None:
    [message] = errors_of("kind: component\nname: a\nname: b\n")
    assert message == "f.yaml:3:1: duplicate key 'name' (first defined on line 2)"


def test_multi_document() -> None:
    [message] = errors_of("kind: component\n---\nkind: operation\n")
    assert message.startswith("f.yaml:3:")
    assert "more than one YAML document" in message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    [message] = errors_of(text)
    assert "empty file" in message


def test_top_level_not_a_mapping() -> None:
    [message] = errors_of("- a\n- b\n")
    assert "mapping" in message


def test_syntax_error_is_located() -> None:
    [message] = errors_of("kind: component\nrun: {kind: job\n")
    assert message.startswith("f.yaml:3:1:") or message.startswith("f.yaml:2:")


def test_invalid_json_is_located() -> None:
    [message] = errors_of('{"kind": "component",\n "run": }\n', path="f.json")
    assert message.startswith("f.json:2:")
