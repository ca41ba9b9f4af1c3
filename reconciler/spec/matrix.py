"""Matrices (grid, random, mapping, hyperband, bayes, tpe, iterative), their search spaces and
early stopping. `hyperopt` was renamed `tpe` in Polyaxon 2.17; the old name gets a message that
says so instead of a generic "unknown kind"."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BeforeValidator,
    Field,
    PositiveInt,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from reconciler.spec.base import BoolOrRef, ByKind, Ref, SpecModel, StrictIntOrFloat
from reconciler.spec.io import Param

# Early stopping lives in its own module (a DAG has it too); matrices' users import it from here.
from reconciler.spec.stopping import (  # noqa: F401
    DiffStoppingPolicy,
    EarlyStopping,
    EarlyStoppingList,
    FailureEarlyStopping,
    MedianStoppingPolicy,
    MetricEarlyStopping,
    Optimization,
    StoppingPolicy,
    TruncationStoppingPolicy,
)


class OptimizationMetric(SpecModel):
    name: str
    optimization: Optimization | None = None


class OptimizationResource(SpecModel):
    name: str
    type: Literal["int", "float"] | None = None


# --- search spaces ----------------------------------------------------------------------------


class _Range(SpecModel):
    """A range written as a mapping, a list `[a, b, c]`, or a string `"a:b:c"`."""

    KEYS: ClassVar[tuple[str, ...]] = ()
    REQUIRED: ClassVar[int] = 0
    ORDERED: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _from_short_forms(cls, value: Any) -> Any:
        if isinstance(value, str):
            if ":" not in value:
                raise ValueError("expected values separated by ':'")
            value = value.split(":")
        if isinstance(value, list):
            if len(value) < cls.REQUIRED or len(value) > len(cls.KEYS):
                raise ValueError(f"expected {cls.REQUIRED} to {len(cls.KEYS)} values ({', '.join(cls.KEYS)})")
            value = dict(zip(cls.KEYS, value, strict=False))
        return value

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        values = [getattr(self, k) for k in self.KEYS]
        if self.ORDERED and values[0] >= values[1]:
            raise ValueError(f"{self.KEYS[1]} must be greater than {self.KEYS[0]}")
        if self.REQUIRED == 3 and not values[2]:
            raise ValueError(f"{self.KEYS[2]} must be > 0")
        return self


class Range(_Range):
    KEYS = ("start", "stop", "step")
    REQUIRED = 3
    start: float
    stop: float
    step: StrictIntOrFloat | float


class DateRange(_Range):
    KEYS = ("start", "stop", "step")
    REQUIRED = 3
    start: dt.date
    stop: dt.date
    step: int


class DateTimeRange(_Range):
    KEYS = ("start", "stop", "step")
    REQUIRED = 3
    start: dt.datetime
    stop: dt.datetime
    step: dt.timedelta


class LinSpace(_Range):
    KEYS = ("start", "stop", "num")
    REQUIRED = 3
    start: float
    stop: float
    num: int


class LogSpace(_Range):
    KEYS = ("start", "stop", "num", "base")
    REQUIRED = 3
    start: float
    stop: float
    num: int
    base: int | None = None


class GeomSpace(LinSpace):
    pass


class Uniform(_Range):
    KEYS = ("low", "high", "size")
    REQUIRED = 2
    ORDERED = False  # distributions take any low and high (Polyaxon's Dist)
    low: float
    high: float
    size: int | None = None


class QUniform(_Range):
    KEYS = ("low", "high", "q", "size")
    REQUIRED = 3
    ORDERED = False
    low: float
    high: float
    q: StrictIntOrFloat | float
    size: int | None = None


class Normal(_Range):
    KEYS = ("loc", "scale", "size")
    REQUIRED = 2
    ORDERED = False
    loc: float
    scale: float
    size: int | None = None


class QNormal(_Range):
    KEYS = ("loc", "scale", "q", "size")
    REQUIRED = 3
    ORDERED = False
    loc: float
    scale: float
    q: StrictIntOrFloat | float
    size: int | None = None


def _pchoice(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[1], float) and 0 <= value[1] < 1:
        return value
    raise ValueError("expected [value, probability] with 0 <= probability < 1")


class HpChoice(SpecModel):
    kind: Literal["choice"] = "choice"
    value: list[Any] | Ref | None


class HpPChoice(SpecModel):
    kind: Literal["pchoice"] = "pchoice"
    value: list[Any] | Ref | None = None

    @field_validator("value")
    @classmethod
    def _sums_to_one(cls, value: Any) -> Any:
        if isinstance(value, list):
            for item in value:
                _pchoice(item)
            if sum(item[1] for item in value) > 1:
                raise ValueError("the probabilities of a pchoice must sum to at most 1")
        return value


class _Hp(SpecModel):
    IS_DISTRIBUTION: ClassVar[bool] = False


class _Distribution(_Hp):
    IS_DISTRIBUTION = True


class HpRange(_Hp):
    kind: Literal["range"] = "range"
    value: Union[Range, Ref, None] = None


class HpDateRange(_Hp):
    kind: Literal["daterange"] = "daterange"
    value: Union[DateRange, Ref, None] = None


class HpDateTimeRange(_Hp):
    kind: Literal["datetimerange"] = "datetimerange"
    value: Union[DateTimeRange, Ref, None]


class HpLinSpace(_Hp):
    kind: Literal["linspace"] = "linspace"
    value: Union[LinSpace, Ref, None] = None


class HpLogSpace(_Hp):
    kind: Literal["logspace"] = "logspace"
    value: Union[LogSpace, Ref, None] = None


class HpGeomSpace(_Hp):
    kind: Literal["geomspace"] = "geomspace"
    value: Union[GeomSpace, Ref, None] = None


class HpUniform(_Distribution):
    kind: Literal["uniform"] = "uniform"
    value: Union[Uniform, Ref, None] = None


class HpQUniform(_Distribution):
    kind: Literal["quniform"] = "quniform"
    value: Union[QUniform, Ref, None] = None


class HpLogUniform(_Distribution):
    kind: Literal["loguniform"] = "loguniform"
    value: Union[Uniform, Ref, None] = None


class HpQLogUniform(_Distribution):
    kind: Literal["qloguniform"] = "qloguniform"
    value: Union[QUniform, Ref, None] = None


class HpNormal(_Distribution):
    kind: Literal["normal"] = "normal"
    value: Union[Normal, Ref, None] = None


class HpQNormal(_Distribution):
    kind: Literal["qnormal"] = "qnormal"
    value: Union[QNormal, Ref, None] = None


class HpLogNormal(_Distribution):
    kind: Literal["lognormal"] = "lognormal"
    value: Union[Normal, Ref, None] = None


class HpQLogNormal(_Distribution):
    kind: Literal["qlognormal"] = "qlognormal"
    value: Union[QNormal, Ref, None] = None


HpParam = Annotated[
    Union[
        HpChoice,
        HpPChoice,
        HpRange,
        HpDateRange,
        HpDateTimeRange,
        HpLinSpace,
        HpLogSpace,
        HpGeomSpace,
        HpUniform,
        HpQUniform,
        HpLogUniform,
        HpQLogUniform,
        HpNormal,
        HpQNormal,
        HpLogNormal,
        HpQLogNormal,
    ],
    Field(discriminator="kind"),
]
HpParams = dict[str, HpParam]


def _is_distribution(param: Any) -> bool:
    return bool(getattr(param, "IS_DISTRIBUTION", False))


class Tuner(SpecModel):
    hub_ref: str
    presets: list[StrictStr] | Ref | None = None
    queue: StrictStr | None = None
    namespace: StrictStr | None = None
    params: dict[str, Param] | Ref | None = None


PositiveIntOrRef = Union[PositiveInt, Ref]


def _compared_with_one(value: Any) -> Any:
    # Polyaxon checks `value < 1` on these fields before any conversion, so a string fails there,
    # a quoted number ("5") and a reference ("{{ n }}") alike.
    if isinstance(value, str) and value:
        raise ValueError(f"expected a whole number, not text ({value!r}): Polyaxon takes no quotes or references here")
    return value


# numRuns, maxIterations and concurrency of grid, random, tpe and iterative matrices: lax integers
# (5.0 and true are fine) that must not be strings; mapping's concurrency is compared after
# conversion, so "5" is fine there and only a reference fails.
CountedPositiveInt = Annotated[PositiveInt, BeforeValidator(_compared_with_one)]


class GridSearch(SpecModel):
    kind: Literal["grid"] = "grid"
    params: HpParams | Ref
    num_runs: CountedPositiveInt | None = None
    concurrency: CountedPositiveInt | None = None
    early_stopping: EarlyStoppingList | None = None

    @field_validator("params")
    @classmethod
    def _no_distributions(cls, params: Any) -> Any:
        if isinstance(params, dict):
            for key, value in params.items():
                if _is_distribution(value):
                    raise ValueError(f"{key!r} is a distribution ({value.kind}); grid search needs discrete values")
        return params


class RandomSearch(SpecModel):
    kind: Literal["random"] = "random"
    params: HpParams | Ref
    num_runs: CountedPositiveInt
    seed: StrictInt | Ref | None = None
    concurrency: CountedPositiveInt | None = None
    early_stopping: EarlyStoppingList | None = None


class Mapping(SpecModel):
    kind: Literal["mapping"] = "mapping"
    values: list[dict[str, Any]] | Ref
    concurrency: PositiveInt | None = None
    early_stopping: EarlyStoppingList | None = None


class Hyperband(SpecModel):
    kind: Literal["hyperband"] = "hyperband"
    params: HpParams | Ref | None = None
    max_iterations: PositiveInt | None = None
    eta: Annotated[float, Field(ge=0)] | Ref | None = None
    resource: OptimizationResource | None = None
    metric: OptimizationMetric | None = None
    resume: BoolOrRef | None = None
    seed: StrictInt | Ref | None = None
    concurrency: PositiveIntOrRef | None = None
    tuner: Tuner | None = None
    early_stopping: EarlyStoppingList | None = None


class GaussianProcess(SpecModel):
    kernel: Literal["rbf", "matern"] | None = "matern"
    length_scale: float | None = 1.0
    nu: float | None = 1.5
    num_restarts_optimizer: int | None = 0


class UtilityFunction(SpecModel):
    acquisition_function: Literal["ucb", "ei", "poi"] | None = "ucb"
    gaussian_process: GaussianProcess | None = None
    kappa: float | None = None
    eps: float | None = None
    num_warmup: int | None = None
    num_iterations: int | None = None

    @model_validator(mode="after")
    def _needs_parameter(self) -> UtilityFunction:
        if self.acquisition_function == "ucb" and self.kappa is None:
            raise ValueError("the acquisition function 'ucb' requires 'kappa'")
        if self.acquisition_function in ("ei", "poi") and self.eps is None:
            raise ValueError(f"the acquisition function {self.acquisition_function!r} requires 'eps'")
        return self


class Bayes(SpecModel):
    kind: Literal["bayes"] = "bayes"
    utility_function: UtilityFunction | None = None
    num_initial_runs: PositiveIntOrRef
    max_iterations: PositiveIntOrRef
    metric: OptimizationMetric
    params: HpParams | Ref
    seed: StrictInt | Ref | None = None
    concurrency: PositiveIntOrRef | None = None
    tuner: Tuner | Ref | None = None
    early_stopping: EarlyStoppingList | None = None

    @field_validator("params")
    @classmethod
    def _uniform_only(cls, params: Any) -> Any:
        if isinstance(params, dict):
            for key, value in params.items():
                if _is_distribution(value) and value.kind != "uniform":
                    raise ValueError(f"{key!r} is a non-uniform distribution; bayes supports only uniform")
        return params


class TPE(SpecModel):
    kind: Literal["tpe"] = "tpe"
    max_iterations: StrictInt | Ref | None = None
    metric: OptimizationMetric
    params: HpParams | Ref
    num_runs: CountedPositiveInt
    seed: StrictInt | Ref | None = None
    concurrency: CountedPositiveInt | None = None
    tuner: Tuner | None = None
    early_stopping: EarlyStoppingList | None = None


class Iterative(SpecModel):
    kind: Literal["iterative"] = "iterative"
    params: HpParams | Ref | None = None
    max_iterations: CountedPositiveInt
    seed: StrictInt | Ref | None = None
    concurrency: CountedPositiveInt | None = None
    tuner: Tuner | None = None
    early_stopping: EarlyStoppingList | None = None


# Each kind's validator is built when a matrix of that kind is first validated (see `ByKind`).
Matrix = Annotated[
    Bayes | GridSearch | Hyperband | TPE | Iterative | Mapping | RandomSearch,
    ByKind.of(Bayes, GridSearch, Hyperband, TPE, Iterative, Mapping, RandomSearch),
]

MATRIX_KINDS = ("grid", "random", "mapping", "hyperband", "bayes", "tpe", "iterative")
