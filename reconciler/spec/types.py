"""Typed values of inputs and outputs (`type: int`, `type: path`, `type: Dict[str, int]`, ...).

Values are converted the way Polyaxon does: leniently (`"3"` is a fine `int` for an input given
on a command line) and, for structured types, from JSON text. The result is used to check
defaults and params; the spec keeps the value as written.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
from functools import lru_cache
from typing import Annotated, Any, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# Types whose string values are not JSON text but the value itself.
_NOT_JSON = {
    "any",
    "str",
    "bool",
    "path",
    "date",
    "datetime",
    "timedelta",
    "uri",
    "image",
    "gcs",
    "s3",
    "wasb",
    "uuid",
    "email",
}


class TypeCheckError(ValueError):
    pass


class _Lax(BaseModel):
    # Built when a value of its type is first checked, not at import (see `SpecModel`).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


def _pattern_str(pattern: str, what: str) -> Any:
    regex = re.compile(pattern)

    def check(value: Any) -> str:
        if not isinstance(value, str) or not regex.match(value):
            raise ValueError(f"not a valid {what}")
        return value

    return Annotated[str, AfterValidator(check)]


class GitType(_Lax):
    url: str | None = None
    revision: str | None = None
    flags: list[str] | None = None


class FileType(_Lax):
    kind: str | None = None
    content: str
    filename: str | None = None
    chmod: str | None = None


class TensorboardType(_Lax):
    port: int | None = None
    uuids: list[str] | None = None
    use_names: bool | None = Field(default=None, alias="useNames")
    path_prefix: str | None = Field(default=None, alias="pathPrefix")
    plugins: list[str] | None = None


class DockerfileType(_Lax):
    image: str
    env: Any = None
    path: list[str] | None = None
    copy_: Any = Field(default=None, alias="copy")
    post_run_copy: Any = Field(default=None, alias="postRunCopy")
    run: list[str] | None = None
    lang_env: str | None = Field(default=None, alias="langEnv")
    uid: int | None = None
    gid: int | None = None
    username: str | None = None
    filename: str | None = None
    workdir: str | None = None
    workdir_path: str | None = Field(default=None, alias="workdirPath")
    shell: str | None = None


class ArtifactsType(_Lax):
    files: list[str | list[str]] | None = None
    dirs: list[str | list[str]] | None = None
    workers: int | None = None


class EventType(_Lax):
    kind: str
    name: str


def _image(value: Any) -> str:
    # A docker image name, or the older {name, connection} mapping form.
    if isinstance(value, dict):
        value = value.get("name")
    if not value or not isinstance(value, str):
        raise ValueError("an image name is required")
    if "{{" in value:
        return value
    parts = value.removeprefix("https://").removeprefix("http://").split(":")
    if " " in value or len(parts) > 3 or (len(parts) == 3 and ("/" not in parts[1] or parts[1].startswith("/"))):
        raise ValueError(f"invalid docker image {value!r}")
    return value


_UUID = _pattern_str(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$", "uuid")

_NAMES: dict[str, Any] = {
    "any": Any,
    "str": Union[str, int, float, bool, dict[str, Any], list[Any]],
    "int": int,
    "float": float,
    "bool": bool,
    "dict": dict[str, Any],
    "list": list[Any],
    "path": str,
    "metric": float,
    "metadata": dict[str, Any],
    "date": dt.date,
    "datetime": Union[dt.datetime, dt.date],
    "timedelta": dt.timedelta,
    "uri": _pattern_str(r"^([^:/?#]+://)?[^\s]+$", "uri"),
    "image": Annotated[Any, AfterValidator(_image)],
    "gcs": _pattern_str(r"^gs://[^/\s]+(/.*)?$", "gcs path (gs://bucket/path)"),
    "s3": _pattern_str(r"^s3://[^/\s]+(/.*)?$", "s3 path (s3://bucket/path)"),
    "wasb": _pattern_str(r"^wasbs?://[^@\s]+@[^/\s]+(/.*)?$", "wasb path (wasbs://container@account/path)"),
    "uuid": _UUID,
    "email": _pattern_str(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "email"),
    "git": GitType,
    "file": FileType,
    "tensorboard": TensorboardType,
    "dockerfile": DockerfileType,
    "artifacts": ArtifactsType,
    "event": EventType,
}

# Names usable inside generic type expressions such as `Dict[str, List[int]]`.
_GENERIC_NAMES: dict[str, Any] = {
    "List": list,
    "Dict": dict,
    "Optional": Optional,
    "Union": Union,
    "Any": Any,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
}


def _eval_type(node: ast.AST) -> Any:
    if isinstance(node, ast.Name) and node.id in _GENERIC_NAMES:
        return _GENERIC_NAMES[node.id]
    if isinstance(node, ast.Subscript):
        base = _eval_type(node.value)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        params = tuple(_eval_type(a) for a in args)
        return base[params if len(params) > 1 else params[0]]
    raise TypeCheckError("unsupported type expression")


@lru_cache(maxsize=256)
def _adapter(type_name: str, is_list: bool) -> TypeAdapter[Any]:
    target = _NAMES.get(type_name)
    if target is None:
        try:
            target = _eval_type(ast.parse(type_name, mode="eval").body)
        except (SyntaxError, TypeCheckError, TypeError):
            raise TypeCheckError(f"unknown type {type_name!r}") from None
    if is_list:
        target = list[target]  # type: ignore[valid-type]
    return TypeAdapter(target)


def is_known_type(type_name: str) -> bool:
    try:
        _adapter(type_name, False)
    except TypeCheckError:
        return False
    return True


def convert(type_name: str, value: Any, *, is_list: bool = False) -> Any:
    """The value converted to `type_name`, or `TypeCheckError` saying why not."""
    adapter = _adapter(type_name, is_list)
    candidate = value
    if isinstance(value, str) and (is_list or type_name not in _NOT_JSON):
        try:
            candidate = json.loads(value)
        except ValueError:
            candidate = value
    try:
        return adapter.validate_python(candidate)
    except ValidationError as e:
        first = e.errors()[0]
        raise TypeCheckError(
            f"cannot convert {value!r} to {type_name}{'[]' if is_list else ''}: {first['msg']}"
        ) from None


def check_value(
    type_name: str, value: Any, *, is_list: bool = False, validation: Any = None, options: Any = None
) -> Any:
    converted = convert(type_name, value, is_list=is_list)
    opts = options if options is not None else getattr(validation, "options", None)
    if opts is not None and isinstance(opts, list):
        items = converted if isinstance(converted, list) else [converted]
        for item in items:
            if item not in opts:
                raise TypeCheckError(f"{item!r} is not one of {opts!r}")
    return converted
