"""Inputs, outputs and params: the typed interface of a component and what an operation passes."""

from typing import Any, Self

from pydantic import Field, StrictBool, StrictStr, field_validator, model_validator

from reconciler.spec.base import IntOrRef, Ref, SpecModel, StrictIntOrFloat

IO_RESERVED_NAMES = ("globals", "params", "connections")


class Validation(SpecModel):
    delay: bool | Ref | None = None
    gt: StrictIntOrFloat | float | Ref | None = None
    ge: StrictIntOrFloat | float | Ref | None = None
    lt: StrictIntOrFloat | float | Ref | None = None
    le: StrictIntOrFloat | float | Ref | None = None
    multiple_of: StrictIntOrFloat | float | Ref | None = None
    min_digits: IntOrRef | None = None
    max_digits: IntOrRef | None = None
    decimal_places: IntOrRef | None = None
    regex: StrictStr | None = None
    min_length: IntOrRef | None = None
    max_length: IntOrRef | None = None
    contains: Any = None
    excludes: Any = None
    options: Any = None
    min_items: IntOrRef | None = None
    max_items: IntOrRef | None = None
    keys: list[StrictStr] | Ref | None = None
    contains_keys: list[StrictStr] | Ref | None = None
    excludes_keys: list[StrictStr] | Ref | None = None


class IO(SpecModel):
    name: StrictStr
    description: StrictStr | None = None
    type: StrictStr | None = None
    is_optional: bool | None = None
    is_list: bool | None = None
    is_flag: bool | None = None
    arg_format: StrictStr | None = None
    connection: StrictStr | None = None
    to_init: bool | None = None
    to_env: StrictStr | None = None
    value: Any = None
    validation: Validation | None = None
    delay_validation: bool | None = None
    options: Any = None

    @field_validator("name")
    @classmethod
    def _name_not_reserved(cls, name: str) -> str:
        if name in IO_RESERVED_NAMES:
            raise ValueError(f"the name {name!r} is reserved by the context; use another name")
        return name

    @model_validator(mode="before")
    @classmethod
    def _default_means_optional(cls, values: Any) -> Any:
        # A default value makes an input optional unless it explicitly says otherwise, which is
        # contradictory and rejected (as Polyaxon does).
        if not isinstance(values, dict):
            return values
        has_optional = "is_optional" in values or "isOptional" in values
        is_optional = values.get("is_optional", values.get("isOptional"))
        if "value" in values:
            if not has_optional:
                values = {**values, "isOptional": True}
                values.pop("is_optional", None)
            elif is_optional is False:
                raise ValueError(
                    f"IO {values.get('name')!r} is not optional but has a default value "
                    f"{values.get('value')!r}; make it optional or remove the default"
                )
        return values

    @model_validator(mode="after")
    def _value_matches_type(self) -> Self:
        from reconciler.spec.types import TypeCheckError, check_value

        if self.is_flag and self.type != "bool":
            raise ValueError(f"IO type {self.type!r} cannot be a flag; flags must be of type 'bool'")
        if self.value is not None and self.type:
            try:
                check_value(
                    self.type,
                    self.value,
                    is_list=bool(self.is_list),
                    validation=self.validation,
                    options=self.options,
                )
            except TypeCheckError as e:
                raise ValueError(f"default value {self.value!r} of {self.name!r}: {e}") from None
        return self

    @property
    def optional(self) -> bool:
        return bool(self.is_optional)


class Param(SpecModel):
    value: Any = None
    ref: StrictStr | None = None
    context_only: bool | None = None
    connection: StrictStr | None = None
    to_init: bool | None = None
    to_env: StrictStr | None = None

    @model_validator(mode="after")
    def _ref_has_value(self) -> Self:
        if self.ref is not None and self.value is None:
            raise ValueError("a param with `ref` needs a `value` naming what to take from it")
        if self.ref is not None and not isinstance(self.value, str):
            raise ValueError("a param with `ref` needs a string `value`, e.g. outputs.loss")
        return self

    @property
    def is_ref(self) -> bool:
        return self.ref is not None


JoinParam = Param

__all__ = ["IO", "IO_RESERVED_NAMES", "Field", "JoinParam", "Param", "StrictBool", "Validation"]
