"""Early stopping of a DAG or a matrix: a metric rule (with a stopping policy) or a share of failures.

Its own module because a DAG has it too: validating a DAG does not import the matrix kinds.
"""

from typing import Annotated, Literal, Union

from pydantic import Field, StrictFloat

from reconciler.spec.base import BoolOrRef, FloatOrRef, IntOrRef, Ref, SpecModel

Optimization = Literal["maximize", "minimize"]


class MedianStoppingPolicy(SpecModel):
    kind: Literal["median"] = "median"
    evaluation_interval: IntOrRef
    min_interval: IntOrRef | None = None
    min_samples: IntOrRef | None = None


class TruncationStoppingPolicy(SpecModel):
    kind: Literal["truncation"] = "truncation"
    percent: FloatOrRef
    evaluation_interval: IntOrRef
    min_interval: IntOrRef | None = None
    min_samples: IntOrRef | None = None
    include_succeeded: BoolOrRef | None = None


class DiffStoppingPolicy(SpecModel):
    kind: Literal["diff"] = "diff"
    percent: FloatOrRef
    evaluation_interval: IntOrRef
    min_interval: IntOrRef | None = None
    min_samples: IntOrRef | None = None


StoppingPolicy = Annotated[
    MedianStoppingPolicy | TruncationStoppingPolicy | DiffStoppingPolicy, Field(discriminator="kind")
]


class MetricEarlyStopping(SpecModel):
    kind: Literal["metric_early_stopping"] = "metric_early_stopping"
    metric: str
    value: FloatOrRef
    optimization: StrictFloat | Optimization
    policy: StoppingPolicy | None = None


class FailureEarlyStopping(SpecModel):
    kind: Literal["failure_early_stopping"] = "failure_early_stopping"
    percent: FloatOrRef


EarlyStopping = Annotated[MetricEarlyStopping | FailureEarlyStopping, Field(discriminator="kind")]
EarlyStoppingList = Union[list[EarlyStopping], Ref]
