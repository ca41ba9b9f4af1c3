"""Safe YAML reading that keeps every node's position, with limits for hostile input.

PyYAML's constructors drop marks, so we compose the node tree ourselves and build plain Python
values, and record for each path of keys and indexes where it came from. Errors anywhere in
the spec layer are then reported at the exact line and column of the offending node. Positions are
recorded the first time someone asks for one (most files have no error): recording them was four
fifths of building the values of a large repo.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000

Path = tuple[str | int, ...]
_STR = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


class Document:
    """A parsed file: its plain value and where each path inside it starts.

    `marks` and `key_marks` are computed from the composed nodes on first use, by the same walk
    that built the value (which already passed every limit), and the nodes are dropped then.
    """

    def __init__(
        self,
        value: Any,
        marks: dict[Path, Mark] | None = None,
        key_marks: dict[Path, Mark] | None = None,
        *,
        root: Node | None = None,
    ) -> None:
        self.value = value
        self._root = root
        self._marks = marks if marks is not None or root is not None else {}
        self._key_marks = key_marks if key_marks is not None or root is not None else {}

    def _record(self) -> None:
        if self._marks is None or self._key_marks is None:
            builder = _Builder(record=True)
            if self._root is not None:
                builder.build(self._root, (), 0, frozenset())
            self._marks, self._key_marks, self._root = builder.marks, builder.key_marks, None

    @property
    def marks(self) -> dict[Path, Mark]:
        self._record()
        assert self._marks is not None
        return self._marks

    @property
    def key_marks(self) -> dict[Path, Mark]:
        self._record()
        assert self._key_marks is not None
        return self._key_marks

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Document):
            return NotImplemented
        return (self.value, self.marks, self.key_marks) == (other.value, other.marks, other.key_marks)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __repr__(self) -> str:
        return f"Document(value={self.value!r})"

    def locate(self, path: Path, *, key: bool = False) -> Mark | None:
        """The closest known position for `path`, walking up to the parent when needed."""
        probe = path
        while True:
            table = self.key_marks if key else self.marks
            if probe in table:
                return table[probe]
            if key and probe in self.marks:
                return self.marks[probe]
            if not probe:
                return None
            probe = probe[:-1]


class YamlError(Exception):
    def __init__(self, message: str, mark: Mark | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turns composed nodes into values, counting work so alias bombs stop early; with `record`,
    also notes where each path starts (paths are not even built without it)."""

    def __init__(self, *, record: bool = False) -> None:
        self.record = record
        self.marks: dict[Path, Mark] = {}
        self.key_marks: dict[Path, Mark] = {}
        self.nodes = 0
        self._scalars = SafeConstructor()

    def build(self, node: Node, path: Path, depth: int, active: frozenset[int]) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise YamlError(
                f"document expands to more than {MAX_NODES} nodes (alias bomb or file too large)",
                _mark(node),
            )
        if depth > MAX_DEPTH:
            raise YamlError(f"nesting deeper than {MAX_DEPTH} levels", _mark(node))
        if self.record and path not in self.marks:
            self.marks[path] = _mark(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if id(node) in active:
            raise YamlError("recursive alias", _mark(node))
        inner = active | {id(node)}
        if isinstance(node, SequenceNode):
            if not self.record:
                return [self.build(item, path, depth + 1, inner) for item in node.value]
            return [self.build(item, (*path, i), depth + 1, inner) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            if node.tag == "tag:yaml.org,2002:set":
                raise YamlError("YAML sets are not supported", _mark(node))
            result: dict[Any, Any] = {}
            record = self.record
            key_path = (*path, "<key>") if record else path
            for key_node, value_node in self._pairs(node):
                if isinstance(key_node, ScalarNode) and depth < MAX_DEPTH and self.nodes < MAX_NODES:
                    # What build() does for a scalar key, inlined: most nodes of a file are keys.
                    self.nodes += 1
                    if record and key_path not in self.marks:
                        self.marks[key_path] = _mark(key_node)
                    key = self._scalar(key_node)
                else:
                    key = self.build(key_node, key_path, depth + 1, inner)
                if isinstance(key, (list, dict)):
                    raise YamlError("mapping keys must be scalars", _mark(key_node))
                if key in result:
                    first = self._first_key_node(node, key)
                    where = f" (first defined on line {_mark(first).line})" if first is not None else ""
                    raise YamlError(f"duplicate key {key!r}{where}", _mark(key_node))
                child = (*path, key) if record else path
                if record:
                    self.key_marks[child] = _mark(key_node)
                result[key] = self.build(value_node, child, depth + 1, inner)
            return result
        raise YamlError(f"unsupported YAML node {node.tag}", _mark(node))

    def _first_key_node(self, node: MappingNode, key: Any) -> Node | None:
        """Where `key` was first defined in `node` (for the duplicate-key message only)."""
        for key_node, _ in self._pairs(node):
            if isinstance(key_node, ScalarNode) and self._scalar(key_node) == key:
                return key_node
        return None

    def _scalar(self, node: ScalarNode) -> Any:
        if node.tag == _STR:
            return node.value  # what the constructor returns for a string, without its dispatch
        value = self._scalars.construct_object(node, deep=True)
        if isinstance(value, bytes):
            raise YamlError("binary values are not supported", _mark(node))
        return value

    def _pairs(self, node: MappingNode) -> Iterator[tuple[Node, Node]]:
        # `<<` merge keys: expand in place, explicit keys win as YAML 1.1 says.
        merged: list[tuple[Node, Node]] = []
        own: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        raise YamlError("merge key needs a mapping", _mark(source))
                    merged.extend(source.value)
            else:
                own.append((key_node, value_node))
        own_keys = {k.value for k, _ in own if isinstance(k, ScalarNode)}
        seen: set[Any] = set()
        for key_node, value_node in merged:
            if isinstance(key_node, ScalarNode) and (key_node.value in own_keys or key_node.value in seen):
                continue
            seen.add(getattr(key_node, "value", None))
            yield key_node, value_node
        yield from own


# libyaml composes ten times faster than the pure-Python parser, which matters when a repo of
# thousands of files is compiled; its error messages differ, so a failing document is parsed
# again by the pure-Python parser, whose messages (and positions) are the ones we report.
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", None)


def _compose(text: str) -> list[Node | None]:
    if _FAST_LOADER is not None:
        try:
            return list(yaml.compose_all(text, Loader=_FAST_LOADER))
        except (yaml.YAMLError, RecursionError):
            pass
    return list(yaml.compose_all(text, Loader=yaml.SafeLoader))


def _char_at(text: str, mark: Mark) -> str:
    lines = text.splitlines()
    if 0 < mark.line <= len(lines) and 0 < mark.column <= len(lines[mark.line - 1]):
        return lines[mark.line - 1][mark.column - 1]
    return ""


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null" and node.value in ("", "~", "null")


def parse(text: bytes | str, *, json_file: bool = False, allow_empty: bool = False) -> Document:
    """Parse one YAML (or JSON) document, raising `YamlError` with a position on any problem.

    An empty file (or only comments) is an error unless `allow_empty`, when its value is None.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise YamlError(f"file is larger than {MAX_BYTES // 1024} KiB")
        if b"\x00" in text:
            raise YamlError("binary content (NUL bytes) is not a polyaxonfile")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise YamlError(f"not valid UTF-8 (byte {e.start})") from None
    elif len(text) > MAX_BYTES:
        raise YamlError(f"file is larger than {MAX_BYTES // 1024} KiB")
    if json_file:
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise YamlError(f"invalid JSON: {e.msg}", Mark(e.lineno, e.colno)) from None
        # JSON is YAML 1.2 but may indent with tabs, which YAML's scanner refuses.
        text = text.replace("\t", " ")
    try:
        nodes = _compose(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark is not None else None
        message = e.problem or str(e)
        if where is not None and _char_at(text, where) == "\t":
            message = "tabs are not allowed for indentation; use spaces"
        elif e.context:
            message = f"{e.context}: {message}" if e.problem else e.context
        raise YamlError(message, where) from None
    except yaml.YAMLError as e:
        raise YamlError(f"invalid YAML: {e}") from None
    except RecursionError:
        raise YamlError(f"nesting deeper than {MAX_DEPTH} levels") from None
    documents = [n for n in nodes if n is not None and not _is_null(n)]
    if not documents:
        if allow_empty:
            return Document(None)
        raise YamlError("empty file: expected a polyaxonfile mapping", Mark(1, 1))
    if len(documents) > 1:
        raise YamlError("more than one YAML document; a file holds exactly one", _mark(documents[1]))
    value = _Builder().build(documents[0], (), 0, frozenset())
    return Document(value, root=documents[0])
