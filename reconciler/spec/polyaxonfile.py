"""The polyaxonfile itself: a component, an operation, or a plain file that is both at once.

Polyaxon 2.18 uses one model for the three (`kind: component`, `kind: operation`, or no kind),
with shortcuts (`container`, `cmd`, `env`, `resources`, `ports`, ...) that patch the run when the
operation is compiled. A reference (`hubRef`, `pathRef`, `urlRef`, `dagRef`) or an inline
`component` supplies the run when the file has none.
"""

import math
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    BeforeValidator,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reconciler.spec import k8s
from reconciler.spec import runs as _runs
from reconciler.spec.base import (
    NAME_REGEX,
    ON_FIRST_USE,
    BoolOrRef,
    ByKind,
    FloatOrRef,
    KindModels,
    Ref,
    SpecModel,
    StrictIntOrFloat,
)
from reconciler.spec.io import IO, Param
from reconciler.spec.runs import RUN_MODELS, Dag, Runtime
from reconciler.spec.schedules import Schedule
from reconciler.spec.sections import (
    Build,
    Cache,
    Environment,
    EventTrigger,
    Hook,
    Init,
    Join,
    Mount,
    PatchStrategy,
    Plugins,
    Template,
    Termination,
    TriggerPolicy,
)

# The matrix kinds (and their search spaces) are imported when a file has a matrix: most have none.
MATRIX_MODELS: KindModels[SpecModel] = KindModels(
    {
        "bayes": "reconciler.spec.matrix:Bayes",
        "grid": "reconciler.spec.matrix:GridSearch",
        "hyperband": "reconciler.spec.matrix:Hyperband",
        "tpe": "reconciler.spec.matrix:TPE",
        "iterative": "reconciler.spec.matrix:Iterative",
        "mapping": "reconciler.spec.matrix:Mapping",
        "random": "reconciler.spec.matrix:RandomSearch",
    }
)
if TYPE_CHECKING:
    from reconciler.spec.matrix import Matrix
else:
    Matrix = Annotated[Any, ByKind(MATRIX_MODELS)]

REFERENCE_FIELDS = ("hub_ref", "dag_ref", "url_ref", "path_ref")
PARAM_KEYS = {
    "value",
    "ref",
    "toInit",
    "to_init",
    "toEnv",
    "to_env",
    "contextOnly",
    "context_only",
    "connection",
}


def _name(value: Any) -> Any:
    if isinstance(value, str) and not NAME_REGEX.match(value) and "{{" not in value:
        raise ValueError(f"invalid name {value!r}: use letters, digits, '-' and '_' only")
    return value


def _str_list(value: Any) -> Any:
    # `tags: a, b` is accepted as a list, as Polyaxon does.
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _normalize_param(value: Any) -> Any:
    """A param is either full form ({value: ..., ref: ...}) or just its value; `{}` is no value."""
    if value == {}:
        return {"value": None}
    if isinstance(value, dict) and PARAM_KEYS & set(value):
        return value
    return {"value": value}


def _renamed_kinds(value: Any) -> Any:
    if isinstance(value, dict) and value.get("kind") == "hyperopt":
        raise PydanticCustomError(
            "renamed", "matrix kind 'hyperopt' was renamed 'tpe' in Polyaxon 2.17; use kind: tpe", {"subpath": ["kind"]}
        )
    return value


_COUNT_MAX = 2**63
_CPU = re.compile(r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$")
_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?(e[0-9]+|[EPTGMk]i?|Ki)?$")


def _check_resource(key: str, value: Any) -> None:
    is_quantity = key in ("cpu", "memory")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"resources.{key} must be a number or a range such as 1..2")
    if not isinstance(value, str):
        if (isinstance(value, float) and not math.isfinite(value)) or value < 0:
            raise ValueError(f"resources.{key} must be a finite non-negative number")
        if value >= _COUNT_MAX:
            raise ValueError(f"resources.{key} is too large")
        if not is_quantity and not isinstance(value, int):
            raise ValueError(f"resources.{key} must be an integer count")
        return
    low, _sep, high = (p.strip() for p in value.strip().partition(".."))
    if not low and not high:
        raise ValueError(f"resources.{key} needs a request, a limit, or both")
    pattern = _CPU if key == "cpu" else _MEMORY if key == "memory" else re.compile(r"^[0-9]+$")
    for part in (low, high):
        if part and not pattern.match(part):
            raise ValueError(f"resources.{key} has an unsupported value {part!r}")


class Polyaxonfile(SpecModel):
    version: float | None = None
    kind: Literal["component", "operation"] | None = None
    name: Annotated[StrictStr | None, BeforeValidator(_name)] = None
    description: StrictStr | None = None
    tags: Annotated[list[StrictStr] | None, BeforeValidator(_str_list)] = None
    presets: Annotated[list[StrictStr] | None, BeforeValidator(_str_list)] = None
    strict_params: bool | None = None
    queue: StrictStr | None = None
    namespace: StrictStr | None = None
    # The sections most files do not have are validated by their own validators, built on first
    # use (see `base.ON_FIRST_USE`).
    cache: Annotated[Cache | Ref, ON_FIRST_USE] | None = None
    termination: Annotated[Termination | Ref, ON_FIRST_USE] | None = None
    plugins: Annotated[Plugins | Ref, ON_FIRST_USE] | None = None
    build: Annotated[Build | Ref, ON_FIRST_USE] | None = None
    hooks: Annotated[list[Hook] | Ref, ON_FIRST_USE] | None = None
    is_approved: BoolOrRef | None = None
    cost: FloatOrRef | None = None
    mount: Annotated[list[StrictStr | Mount], ON_FIRST_USE] | None = None
    # operation fields
    schedule: Schedule | None = None
    events: Annotated[list[EventTrigger] | Ref, ON_FIRST_USE] | None = None
    matrix: Annotated[Matrix | None, BeforeValidator(_renamed_kinds)] = None
    joins: Annotated[list[Join] | Ref, ON_FIRST_USE] | None = None
    dependencies: list[StrictStr] | Ref | None = None
    trigger: TriggerPolicy | Ref | None = None
    conditions: StrictStr | None = None
    skip_on_upstream_skip: bool | None = None
    # component fields
    inputs: Annotated[list[IO], ON_FIRST_USE] | None = None
    outputs: Annotated[list[IO], ON_FIRST_USE] | None = None
    run: Runtime | dict[str, Any] | None = None
    # shortcuts, applied to the run at compile time
    ports: list[StrictInt] | None = None
    container: k8s.Container | Ref | None = None
    cmd: StrictStr | list[StrictStr] | None = None
    env: dict[StrictStr, StrictStr] | None = None
    resources: dict[StrictStr, StrictIntOrFloat | StrictStr] | None = None
    environment: Annotated[Environment, ON_FIRST_USE] | None = None
    init: Annotated[list[Init], ON_FIRST_USE] | None = None
    connections: list[StrictStr] | None = None
    sidecars: list[k8s.Container] | None = None
    volumes: list[k8s.Volume] | None = None
    template: Annotated[Template, ON_FIRST_USE] | None = None
    params: dict[StrictStr, Param] | None = None
    # references
    hub_ref: StrictStr | None = None
    dag_ref: StrictStr | None = None
    url_ref: StrictStr | None = None
    path_ref: StrictStr | None = None
    component: "Polyaxonfile | None" = None
    patch_strategy: PatchStrategy | None = None
    is_preset: bool | None = None
    run_patch: dict[str, Any] | None = None

    @field_validator("run", mode="wrap")
    @classmethod
    def _run_typed(cls, run: Any, handler: Any) -> Any:
        # With a kind, the run must be that kind exactly; without one it is a patch for the
        # referenced component's run.
        if isinstance(run, dict) and "kind" not in run:
            return run
        if isinstance(run, dict):
            kind = run["kind"]
            if not isinstance(kind, str) or kind not in RUN_MODELS:
                raise PydanticCustomError(
                    "run_kind",
                    "unsupported run.kind '{kind}'; expected one of {kinds}",
                    {"kind": kind, "kinds": ", ".join(RUN_MODELS), "subpath": ["kind"]},
                )
            return RUN_MODELS[kind].model_validate(run)
        return handler(run)

    @field_validator("cmd")
    @classmethod
    def _cmd_not_blank(cls, cmd: Any) -> Any:
        if isinstance(cmd, str):
            if not cmd.strip():
                raise ValueError("cmd must not be blank")
        elif cmd is not None:
            if not cmd:
                raise ValueError("cmd must not be empty")
            for index, line in enumerate(cmd):
                if not line.strip():
                    raise ValueError(f"cmd[{index}] must not be blank")
        return cmd

    @field_validator("env", mode="before")
    @classmethod
    def _env_strings(cls, env: Any) -> Any:
        if env is None:
            return env
        if not isinstance(env, dict):
            raise ValueError("env must be a mapping of names to string values")
        for name, value in env.items():
            if isinstance(value, (bool, int, float)):
                literal = str(value).lower() if isinstance(value, bool) else value
                raise ValueError(f'env.{name} must be a string; quote it: "{literal}"')
        return env

    @field_validator("resources", mode="before")
    @classmethod
    def _resources(cls, resources: Any) -> Any:
        if resources is None:
            return resources
        if not isinstance(resources, dict):
            raise ValueError("resources must be a mapping of resource names to values")
        if "nvidia.com/gpu" in resources:
            raise ValueError("resources.nvidia.com/gpu is spelled gpu")
        for key, value in resources.items():
            if key not in ("cpu", "memory", "gpu") and not (isinstance(key, str) and "/" in key):
                raise ValueError(
                    f"unknown resource {key!r}; use cpu, memory, gpu, or an extended resource such as google.com/tpu"
                )
            _check_resource(key, value)
        return resources

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, params: Any) -> Any:
        if isinstance(params, dict):
            return {k: _normalize_param(v) for k, v in params.items()}
        return params

    @model_validator(mode="after")
    def _references(self) -> Self:
        if self.is_preset:
            return self
        given = [f for f in REFERENCE_FIELDS if getattr(self, f)]
        if len(given) > 1:
            raise ValueError("at most one reference may be given: hubRef, dagRef, urlRef or pathRef")
        if isinstance(self.run, dict) and not given and self.component is None:
            raise ValueError("run.kind must be given here or by a referenced component")
        return self

    # --- reading ------------------------------------------------------------------------------

    @property
    def reference(self) -> tuple[str, str] | None:
        for field in REFERENCE_FIELDS:
            value = getattr(self, field)
            if value:
                return field, value
        return None

    @property
    def run_kind(self) -> str | None:
        kind = getattr(self.run, "kind", None)
        return kind if isinstance(kind, str) else None

    @property
    def dag(self) -> Dag | None:
        return self.run if isinstance(self.run, Dag) else None


# `Dag` (in runs) names `Polyaxonfile`, defined here, which needs `runs`: the name is put where
# pydantic looks when it first builds the models (their module), instead of building them now
# with `model_rebuild()` (that would cost every command importing the spec its whole schema).
_runs.Polyaxonfile = Polyaxonfile  # type: ignore[attr-defined]

__all__ = ["Field", "Polyaxonfile", "ValidationError"]
