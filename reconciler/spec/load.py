"""Parse stage: file bytes -> `Polyaxonfile` model, or located errors.

Pydantic reports errors by a path of field names and indexes, mixed with names of union members
and validators. `locate()` walks that path through the document as written (camelCase or
snake_case keys) to find the node's line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel, to_snake

from reconciler.errors import Located
from reconciler.spec.polyaxonfile import Polyaxonfile
from reconciler.yaml_nodes import Document, Mark, YamlError, parse

# Top-level keys that make a mapping a polyaxonfile rather than some other YAML in the repo.
SIGNATURE_KEYS = {
    "kind",
    "run",
    "component",
    "hubRef",
    "hub_ref",
    "pathRef",
    "path_ref",
    "urlRef",
    "url_ref",
    "dagRef",
    "dag_ref",
    "inputs",
    "outputs",
    "params",
    "matrix",
    "schedule",
    "container",
    "cmd",
}


@dataclass
class Parsed:
    """One file after the parse stage."""

    path: str
    document: Document | None = None
    spec: Polyaxonfile | None = None
    errors: list[Located] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.errors


# Top-level keys of a file with a `kind`: Polyaxon reads them as "sections", camelCase only
# (`hubRef`, not `hub_ref`), although every model below the top level, and a file without a
# `kind`, take both spellings. snake_case spelling -> section.
SNAKE_SECTIONS = {
    name: field.alias
    for name, field in Polyaxonfile.model_fields.items()
    if field.alias is not None and field.alias != name
}


def looks_like_polyaxonfile(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    if value.get("kind") in ("component", "operation"):
        return True
    if "kind" in value and not isinstance(value.get("run"), dict):
        return False  # some other kind of YAML, e.g. a Kubernetes manifest
    return bool(SIGNATURE_KEYS & set(value))


def _step(value: Any, key: Any) -> tuple[bool, Any, Any]:
    if isinstance(value, dict) and isinstance(key, str):
        for candidate in (key, to_camel(key), to_snake(key)):
            if candidate in value:
                return True, value[candidate], candidate
        return False, None, None
    if isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
        return True, value[key], key
    return False, None, None


def document_path(document: Document, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """The path of keys as written in the document for a pydantic `loc`, and the missing key if any."""
    value = document.value
    path: list[Any] = []
    missing: Any = None
    for key in loc:
        found, child, written = _step(value, key)
        if found:
            path.append(written)
            value = child
        elif (
            isinstance(value, dict)
            and isinstance(key, str)
            and not key.startswith(("function-", "tagged-", "list[", "dict["))
            and "[" not in key
        ):
            missing = key
    return tuple(path), missing


def located_from_validation(
    path: str, document: Document, error: ValidationError, *, prefix: tuple[Any, ...] = (), limit: int = 20
) -> list[Located]:
    out: list[Located] = []
    paths: list[tuple[tuple[Any, ...], str]] = []
    seen: set[tuple[Any, ...]] = set()
    for item in error.errors():
        loc = tuple(item["loc"])
        ctx = item.get("ctx") or {}
        doc_path, missing = document_path(document, prefix + loc)
        subpath = ctx.get("subpath") if isinstance(ctx, dict) else None
        if subpath:
            # A Kubernetes object error: continue into the object for the precise node.
            deeper, missing2 = document_path(Document(_get(document.value, doc_path), {}, {}), tuple(subpath))
            doc_path = doc_path + deeper
            missing = missing2 or missing
        message = _message(item, doc_path, missing)
        if subpath:
            message = f"{_dotted(doc_path)}: {item['msg']}"
        key = (doc_path, message)
        if key in seen:
            continue
        seen.add(key)
        is_key = item["type"] == "extra_forbidden" or bool(isinstance(ctx, dict) and ctx.get("is_key"))
        mark = document.locate(doc_path, key=is_key)
        out.append(_at(path, mark, message))
        paths.append((doc_path, item["type"]))
        if len(out) >= limit:
            break
    return _drop_union_noise(out, paths)


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def _dotted(path: tuple[Any, ...]) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def _message(item: Any, doc_path: tuple[Any, ...], missing: Any) -> str:
    kind = item["type"]
    where = _dotted(doc_path)
    msg: str = item["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "extra_forbidden":
        return f"unknown field {doc_path[-1]!r}" + (f" in {_dotted(doc_path[:-1])}" if len(doc_path) > 1 else "")
    if kind == "missing":
        name = to_camel(missing) if isinstance(missing, str) else missing
        return f"missing required field {name!r}" + (f" in {where}" if where else "")
    if kind == "union_tag_invalid":
        tag = item.get("ctx", {}).get("tag")
        expected = item.get("ctx", {}).get("expected_tags")
        return f"{where}: unknown kind {tag!r}; expected one of {expected}"
    if kind == "union_tag_not_found":
        return f"{where}: missing 'kind'"
    return f"{where}: {msg}" if where else msg


def _drop_union_noise(errors: list[Located], paths: list[tuple[tuple[Any, ...], str]]) -> list[Located]:
    """Keep the errors that explain the most specific node.

    A value that fails `Union[Model, Ref]` yields one error per member: the model's (deep and
    precise) and "not a string"/"not a reference" at the value itself, which is noise when the
    user clearly wrote the typed form.
    """
    keep: list[Located] = []
    for i, error in enumerate(errors):
        path, _kind = paths[i]
        shadowed = any(len(other) > len(path) and other[: len(path)] == path for other, _ in paths)
        noise = "expected a reference such as" in error.message or _kind in (
            "string_type",
            "list_type",
            "dict_type",
            "model_type",
        )
        if shadowed and noise:
            continue
        if "expected a reference such as" in error.message and len(errors) > 1:
            continue
        keep.append(error)
    return keep or errors[:1]


def _at(path: str, mark: Mark | None, message: str, stage: str = "parse") -> Located:
    return Located(path, mark.line if mark else None, mark.column if mark else None, message, stage)


def parse_document(path: str, data: bytes | str) -> tuple[Document | None, list[Located]]:
    try:
        document = parse(data, json_file=path.endswith(".json"))
    except YamlError as e:
        return None, [_at(path, e.mark, e.message)]
    if not isinstance(document.value, dict):
        return document, [_at(path, document.locate(()), "a polyaxonfile must be a mapping at the top level")]
    return document, []


def load_value(
    path: str, document: Document, value: Any, *, prefix: tuple[Any, ...] = (), check_sections: bool = True
) -> Parsed:
    """Validate an already parsed mapping (a whole file, or an entry inside one) into a model.

    `check_sections`: apply the rules of a file read on its own (camelCase sections); a file read
    through a reference (pathRef, hubRef, urlRef) is read as a plain model, as Polyaxon does.
    """
    result = Parsed(path, document)
    if not isinstance(value, dict):
        result.errors.append(_at(path, document.locate(prefix), "expected a polyaxonfile mapping"))
        return result
    if check_sections and value.get("kind") is not None:
        for key in value:
            if key in SNAKE_SECTIONS:
                message = (
                    f"unknown section {key!r}: at the top level of a file with a kind, write {SNAKE_SECTIONS[key]!r}"
                )
                result.errors.append(_at(path, document.locate((*prefix, key), key=True), message))
        if result.errors:
            return result
    try:
        result.spec = Polyaxonfile.model_validate(value)
    except ValidationError as e:
        result.errors = located_from_validation(path, document, e, prefix=prefix)
    except RecursionError:
        result.errors.append(_at(path, None, "specification nested too deeply"))
    return result


def load(path: str, data: bytes | str, *, referenced: bool = False) -> Parsed:
    """Parse stage for one file; `referenced` when it is read as the target of a reference."""
    document, errors = parse_document(path, data)
    if errors or document is None:
        return Parsed(path, document, None, errors)
    return load_value(path, document, document.value, check_sections=not referenced)
