"""The `run` section: one model per run kind.

Polyaxon 2.18's kinds (job, service, dag, tfjob, pytorchjob, mpijob, daskcluster, raycluster,
notifier, cleaner, tuner) mirror its schema. The kinds its documentation describes but 2.18 lacks
(mxjob, xgbjob, rayjob, daskjob, sparkjob) follow their siblings: Kubeflow replicas for MXNet and
XGBoost, the RayCluster shape plus an entrypoint for RayJob, the DaskCluster shape plus a job
replica for DaskJob, and driver/executor replicas for Spark.
"""

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import PositiveInt, StrictInt, StrictStr

from reconciler.spec import k8s
from reconciler.spec.base import ON_FIRST_USE, BoolOrRef, ByKind, IntOrRef, KindModels, Ref, SpecModel
from reconciler.spec.sections import Environment, Init
from reconciler.spec.stopping import EarlyStoppingList

if TYPE_CHECKING:
    from reconciler.spec.distributed import (
        DaskCluster,
        DaskJob,
        MPIJob,
        MXJob,
        PytorchJob,
        RayCluster,
        RayJob,
        SparkJob,
        TFJob,
        XGBoostJob,
    )
    from reconciler.spec.polyaxonfile import Polyaxonfile


class _Replica(SpecModel):
    """What every pod-running unit has: environment, connections, volumes, init, sidecars, container."""

    # Built on first use (see `base.ON_FIRST_USE`).
    environment: Annotated[Environment | Ref, ON_FIRST_USE] | None = None
    connections: list[StrictStr] | Ref | None = None
    volumes: list[k8s.Volume] | Ref | None = None
    init: Annotated[list[Init] | Ref, ON_FIRST_USE] | None = None
    sidecars: list[k8s.Container] | Ref | None = None
    container: k8s.Container | Ref | None = None


class _Run(SpecModel):
    # Names of the fields that hold replicas, for distributed kinds; runPatch targets them.
    REPLICAS: ClassVar[tuple[str, ...]] = ()
    LONG_RUNNING: ClassVar[bool] = False


class Job(_Run, _Replica):
    kind: Literal["job"] = "job"


class Service(_Run, _Replica):
    LONG_RUNNING = True
    kind: Literal["service"] = "service"
    ports: list[StrictInt] | Ref | None = None
    rewrite_path: BoolOrRef | None = None
    is_external: BoolOrRef | None = None
    replicas: IntOrRef | None = None


class NotifierJob(_Run, _Replica):
    kind: Literal["notifier"] = "notifier"


class CleanerJob(_Run, _Replica):
    kind: Literal["cleaner"] = "cleaner"


class TunerJob(_Run, _Replica):
    kind: Literal["tuner"] = "tuner"


# --- DAG -------------------------------------------------------------------------------------


class Dag(_Run):
    kind: Literal["dag"] = "dag"
    operations: list["Polyaxonfile"] | Ref | None = None
    components: list["Polyaxonfile"] | Ref | None = None
    environment: Environment | Ref | None = None
    connections: list[StrictStr] | Ref | None = None
    volumes: list[k8s.Volume] | Ref | None = None
    concurrency: PositiveInt | Ref | None = None
    early_stopping: EarlyStoppingList | None = None


# The kinds in the order Polyaxon lists them. The distributed ones are imported when a run of one
# of their kinds first arrives, and each kind's validator is built then (see `ByKind`).
_DISTRIBUTED = "reconciler.spec.distributed"
RUN_MODELS: KindModels[_Run] = KindModels(
    {
        "job": Job,
        "service": Service,
        "dag": Dag,
        "mpijob": f"{_DISTRIBUTED}:MPIJob",
        "pytorchjob": f"{_DISTRIBUTED}:PytorchJob",
        "tfjob": f"{_DISTRIBUTED}:TFJob",
        "mxjob": f"{_DISTRIBUTED}:MXJob",
        "xgbjob": f"{_DISTRIBUTED}:XGBoostJob",
        "daskcluster": f"{_DISTRIBUTED}:DaskCluster",
        "daskjob": f"{_DISTRIBUTED}:DaskJob",
        "raycluster": f"{_DISTRIBUTED}:RayCluster",
        "rayjob": f"{_DISTRIBUTED}:RayJob",
        "sparkjob": f"{_DISTRIBUTED}:SparkJob",
        "notifier": NotifierJob,
        "cleaner": CleanerJob,
        "tuner": TunerJob,
    }
)
if TYPE_CHECKING:
    Runtime = Annotated[
        Job
        | Service
        | Dag
        | MPIJob
        | PytorchJob
        | TFJob
        | MXJob
        | XGBoostJob
        | DaskCluster
        | DaskJob
        | RayCluster
        | RayJob
        | SparkJob
        | NotifierJob
        | CleanerJob
        | TunerJob,
        ByKind(RUN_MODELS),
    ]
else:
    Runtime = Annotated[Any, ByKind(RUN_MODELS)]

RUN_KINDS = tuple(RUN_MODELS)
DISTRIBUTED_KINDS = ("tfjob", "pytorchjob", "mpijob", "mxjob", "xgbjob", "rayjob", "daskjob", "sparkjob")
# The kinds whose models say LONG_RUNNING (a test holds the two together).
LONG_RUNNING_KINDS = ("service", "daskcluster", "raycluster")

__all__ = ["RUN_KINDS", "RUN_MODELS", "Dag", "Job", "Runtime", "Service"]
