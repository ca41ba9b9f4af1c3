"""Lexical rules shared by every spec model, matching Polyaxon's parser.

- Unknown keys are errors (`extra="forbid"`).
- Keys are accepted in camelCase (the documented form) and snake_case.
- Numbers are strict: `"3"` is not an int. Booleans are lax: `"yes"`, `"true"`, `1` are true.
- Most typed fields also accept a reference such as `"{{ params.lr }}"`, resolved at compile time.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
)
from pydantic.alias_generators import to_camel
from pydantic_core import CoreSchema, core_schema

# A value that is a template reference, e.g. "{{ params.lr }}" or "{{ globals.uuid }}".
PARAM_REGEX = re.compile(r"{{\s*(.+)\s*}}")
NAME_REGEX = re.compile(r"^[-a-zA-Z0-9_]+\Z")


def _must_be_ref(value: str) -> str:
    if not PARAM_REGEX.search(value):
        raise ValueError(f"expected a reference such as '{{{{ params.name }}}}', got {value!r}")
    return value


Ref = Annotated[StrictStr, AfterValidator(_must_be_ref)]
IntOrRef = Union[StrictInt, Ref]
FloatOrRef = Union[float, Ref]
BoolOrRef = Union[bool, Ref]
StrictIntOrFloat = Union[StrictInt, StrictFloat]


def _generic_str(value: Any) -> Any:
    # Label-like maps accept scalars and keep them as text, as Kubernetes wants strings.
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return value


GenericStr = Annotated[StrictStr, BeforeValidator(_generic_str)]


class SpecModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        arbitrary_types_allowed=True,
        # Validators are built when a model is first used, not when its class is defined: most of
        # the ~110 spec models are only ever validated inside their parent's validator, so
        # building each one on its own at import would double the CLI's start-up.
        defer_build=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """The model as written: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


M = TypeVar("M", bound=BaseModel)


class KindModels(Mapping[str, type[M]]):
    """kind -> model, in a fixed order. A model given as "module:Class" is imported when its kind
    is first looked up (`in` and iterating import nothing)."""

    def __init__(self, models: dict[str, type[M] | str]) -> None:
        self._models = dict(models)

    def __getitem__(self, kind: str) -> type[M]:
        model = self._models[kind]
        if isinstance(model, str):
            module, _, name = model.partition(":")
            model = self._models[kind] = getattr(importlib.import_module(module), name)
        return model

    def __contains__(self, kind: object) -> bool:
        return kind in self._models

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)


class ByKind:
    """`Annotated[A | B | ..., ByKind(models)]`: a union told apart by its `kind` field, whose
    members are validated by their own validators, each built (and, for a `KindModels` entry
    named by module, imported) when the first value of its kind arrives.

    Pydantic's `Field(discriminator="kind")` builds every member's validator into the parent's:
    a polyaxonfile would pay for all sixteen run kinds and seven matrix kinds (and everything
    under them) to validate one job. This is the same tagged union (same error types, messages
    and paths: an unknown or missing kind, a value that is not a mapping, the member's errors
    under its kind), with each member a call to its model's own validator.
    """

    def __init__(self, models: Mapping[str, type[BaseModel]]) -> None:
        self.models = models

    @classmethod
    def of(cls, *models: type[BaseModel]) -> ByKind:
        return cls({model.model_fields["kind"].default: model for model in models})

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # `handler(source)` would build the members' schemas: that is what this avoids.
        plain = core_schema.no_info_plain_validator_function
        return core_schema.tagged_union_schema(
            {kind: plain(functools.partial(_validate, self.models, kind)) for kind in self.models},
            discriminator="kind",
            strict=False,
            from_attributes=True,
        )


class _OnFirstUse:
    """`Annotated[T, ON_FIRST_USE]`: values of the field are validated by a validator of `T` alone,
    built when the first value arrives, instead of by `T`'s part of the validator of the model
    that has the field. For the sections most files do not have (hooks, build, plugins, init,
    ...): the same validator, the same values and errors (with the same paths), only built later."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # `handler(source)` would build `T`'s schema into the parent's: that is what this avoids.
        return core_schema.no_info_plain_validator_function(functools.partial(_validate_first_use, source))


@functools.cache
def _adapter(source: Any) -> TypeAdapter[Any]:
    return TypeAdapter(source)


def _validate_first_use(source: Any, value: Any) -> Any:
    return _adapter(source).validate_python(value)


ON_FIRST_USE = _OnFirstUse()


def _validate(models: Mapping[str, type[BaseModel]], kind: str, value: Any) -> BaseModel:
    return models[kind].model_validate(value)
