"""YAML loading that remembers where every key and value came from.

`yaml.safe_load` throws positions away, silently keeps the last of two duplicate keys and
happily reads several documents. Config and spec errors must say `file:line:col`, so this module
composes the node tree first (which keeps marks), checks what plain loading would let through,
then constructs ordinary Python values and an index from value paths to positions. Validation
layers (pydantic) report error locations as paths; `Doc.position` turns them back into lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import Located

PathKey = tuple[str | int, ...]
Position = tuple[int, int]  # 1-based line, column

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Doc:
    """A loaded document: the value and where each part of it is written."""

    path: str
    value: Any
    values: Mapping[PathKey, Position] = field(default_factory=dict)
    keys: Mapping[PathKey, Position] = field(default_factory=dict)

    def position(self, loc: PathKey, *, at_key: bool = False) -> Position | None:
        """Where `loc` is written; the nearest written ancestor when it is not (a missing key)."""
        if at_key and loc in self.keys:
            return self.keys[loc]
        for n in range(len(loc), -1, -1):
            pos = self.values.get(loc[:n])
            if pos is not None:
                return pos
        return None

    def error(self, loc: PathKey, message: str, *, at_key: bool = False, stage: str | None = None) -> Located:
        pos = self.position(loc, at_key=at_key)
        line, col = pos if pos is not None else (None, None)
        return Located(self.path, line, col, message, stage)


def _pos(node: Node) -> Position:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _from_yaml_error(path: str, err: yaml.YAMLError, stage: str) -> Located:
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        if isinstance(err, yaml.composer.ComposerError) and "single document" in (err.context or ""):
            problem = "only one YAML document is allowed here (found a second document)"
        elif "'\\t'" in problem:
            problem = "tab character where YAML expects spaces"
        if mark is not None:
            return Located(path, mark.line + 1, mark.column + 1, problem, stage)
        return Located(path, None, None, problem, stage)
    return Located(path, None, None, f"invalid YAML: {err}", stage)


def _tab_indents(path: str, text: str, stage: str) -> list[Located]:
    errors: list[Located] = []
    for n, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        col = indent.find("\t")
        if col != -1:
            errors.append(
                Located(path, n, col + 1, "tab character in indentation; indent with spaces", stage)
            )
    return errors


def _index(
    node: Node,
    loc: PathKey,
    path: str,
    stage: str,
    values: dict[PathKey, Position],
    keys: dict[PathKey, Position],
    errors: list[Located],
) -> None:
    values.setdefault(loc, _pos(node))
    if isinstance(node, MappingNode):
        seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not isinstance(key_node, ScalarNode):
                continue  # complex keys: the constructor reports them if they matter
            name = key_node.value
            if name in seen:
                first_line, _ = seen[name]
                line, col = _pos(key_node)
                errors.append(
                    Located(
                        path, line, col, f"duplicate key {name!r} (first defined on line {first_line})", stage
                    )
                )
                continue
            seen[name] = _pos(key_node)
            keys[(*loc, name)] = _pos(key_node)
            _index(value_node, (*loc, name), path, stage, values, keys, errors)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*loc, i), path, stage, values, keys, errors)


def load(
    data: bytes | str, path: str, *, stage: str = "yaml", reject_tabs: bool = True
) -> Doc | list[Located]:
    """Parse one YAML document from `data`, or return every problem found with its position.

    Empty input gives a `Doc` whose value is None. `reject_tabs` refuses tab characters in the
    indentation of any line, including block scalars: config files have no reason for them and
    they render differently everywhere.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            return [Located(path, None, None, f"not UTF-8 text (byte {err.start})", stage)]
    else:
        text = data
    if reject_tabs:
        tab_errors = _tab_indents(path, text, stage)
        if tab_errors:
            return tab_errors

    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as err:
            return [_from_yaml_error(path, err, stage)]
        if node is None:
            return Doc(path, None)
        values: dict[PathKey, Position] = {}
        keys: dict[PathKey, Position] = {}
        errors: list[Located] = []
        _index(node, (), path, stage, values, keys, errors)
        if errors:
            return errors
        try:
            value = loader.construct_document(node)
        except yaml.YAMLError as err:
            return [_from_yaml_error(path, err, stage)]
        return Doc(path, value, values, keys)
    finally:
        loader.dispose()
