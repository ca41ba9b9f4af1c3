"""The distributed run kinds: Kubeflow (tfjob, pytorchjob, mpijob, mxjob, xgbjob), Ray
(raycluster, rayjob), Dask (daskcluster, daskjob) and Spark (sparkjob).

Imported when a file first has a run of one of these kinds (`runs.RUN_MODELS`): most have none.
"""

from typing import Any, Literal, Union

from pydantic import Field, StrictStr

from reconciler.spec import k8s
from reconciler.spec.base import BoolOrRef, GenericStr, IntOrRef, Ref, SpecModel
from reconciler.spec.runs import _Replica, _Run

# --- Kubeflow --------------------------------------------------------------------------------


class KFReplica(_Replica):
    replicas: IntOrRef | None = None


CleanPodPolicy = Literal["All", "Running", "None"]


class SchedulingPolicy(SpecModel):
    min_available: IntOrRef | None = None
    queue: StrictStr | None = None
    min_resources: IntOrRef | None = None
    priority_class: StrictStr | None = None
    schedule_timeout_seconds: IntOrRef | None = None


KFReplicaOrRef = Union[KFReplica, Ref, None]


class TFJob(_Run):
    REPLICAS = ("chief", "ps", "worker", "evaluator")
    kind: Literal["tfjob"] = "tfjob"
    clean_pod_policy: CleanPodPolicy | None = None
    scheduling_policy: SchedulingPolicy | None = None
    enable_dynamic_worker: bool | None = None
    success_policy: StrictStr | None = None
    chief: KFReplicaOrRef = None
    ps: KFReplicaOrRef = None
    worker: KFReplicaOrRef = None
    evaluator: KFReplicaOrRef = None


class PytorchElasticPolicy(SpecModel):
    min_replicas: IntOrRef | None = None
    max_replicas: IntOrRef | None = None
    rdvz_backend: StrictStr | None = None
    rdvz_port: IntOrRef | None = None
    rdvz_host: StrictStr | None = None
    rdvz_id: StrictStr | None = None
    rdvz_conf: list[dict[str, Any]] | None = None
    standalone: BoolOrRef | None = None
    n_proc_per_node: IntOrRef | None = None
    max_restarts: IntOrRef | None = None
    metrics: list[dict[str, Any]] | None = Field(default=None, alias="Metrics")


class PytorchJob(_Run):
    REPLICAS = ("master", "worker")
    kind: Literal["pytorchjob"] = "pytorchjob"
    clean_pod_policy: CleanPodPolicy | None = None
    scheduling_policy: SchedulingPolicy | None = None
    elastic_policy: PytorchElasticPolicy | None = None
    n_proc_per_node: IntOrRef | None = None
    master: KFReplicaOrRef = None
    worker: KFReplicaOrRef = None


class MPIJob(_Run):
    REPLICAS = ("launcher", "worker")
    kind: Literal["mpijob"] = "mpijob"
    clean_pod_policy: CleanPodPolicy | None = None
    scheduling_policy: SchedulingPolicy | None = None
    slots_per_worker: IntOrRef | None = None
    launcher: KFReplicaOrRef = None
    worker: KFReplicaOrRef = None


class MXJob(_Run):
    REPLICAS = ("scheduler", "server", "worker", "tuner", "tuner_tracker", "tuner_server")
    kind: Literal["mxjob"] = "mxjob"
    clean_pod_policy: CleanPodPolicy | None = None
    scheduling_policy: SchedulingPolicy | None = None
    mode: Literal["MXTrain", "MXTune"] | None = None
    scheduler: KFReplicaOrRef = None
    server: KFReplicaOrRef = None
    worker: KFReplicaOrRef = None
    tuner: KFReplicaOrRef = None
    tuner_tracker: KFReplicaOrRef = None
    tuner_server: KFReplicaOrRef = None


class XGBoostJob(_Run):
    REPLICAS = ("master", "worker")
    kind: Literal["xgbjob"] = "xgbjob"
    clean_pod_policy: CleanPodPolicy | None = None
    scheduling_policy: SchedulingPolicy | None = None
    master: KFReplicaOrRef = None
    worker: KFReplicaOrRef = None


# --- Ray -------------------------------------------------------------------------------------


class RayReplica(_Replica):
    replicas: IntOrRef | None = None
    min_replicas: IntOrRef | None = None
    max_replicas: IntOrRef | None = None
    ray_start_params: dict[StrictStr, GenericStr] | None = None


class RayAutoscalerOptions(SpecModel):
    upscaling_mode: str | None = None
    image_pull_policy: str | None = None
    resources: k8s.ResourceRequirements | Ref | None = None


class _RayShape(_Run):
    REPLICAS = ("head", "workers")
    entrypoint: str | None = None
    runtime_env: dict[str, Any] | Ref | None = None
    metadata: dict[str, str] | Ref | None = None
    ray_version: str | None = None
    head: RayReplica | Ref | None = None
    workers: dict[str, RayReplica | Ref] | None = None
    enable_in_tree_autoscaling: BoolOrRef | None = None
    autoscaler_options: RayAutoscalerOptions | Ref | None = None


class RayCluster(_RayShape):
    LONG_RUNNING = True
    kind: Literal["raycluster"] = "raycluster"


class RayJob(_RayShape):
    kind: Literal["rayjob"] = "rayjob"
    shutdown_after_job_finishes: BoolOrRef | None = None
    ttl_seconds_after_finished: IntOrRef | None = None
    active_deadline_seconds: IntOrRef | None = None


# --- Dask ------------------------------------------------------------------------------------


class DaskReplica(_Replica):
    replicas: IntOrRef | None = None


class DaskCluster(_Run):
    LONG_RUNNING = True
    REPLICAS = ("worker", "scheduler")
    kind: Literal["daskcluster"] = "daskcluster"
    worker: DaskReplica | Ref | None = None
    scheduler: DaskReplica | Ref | None = None
    min_replicas: IntOrRef | None = None
    max_replicas: IntOrRef | None = None


class DaskJob(_Run):
    REPLICAS = ("job", "worker", "scheduler")
    kind: Literal["daskjob"] = "daskjob"
    job: DaskReplica | Ref | None = None
    worker: DaskReplica | Ref | None = None
    scheduler: DaskReplica | Ref | None = None


# --- Spark -----------------------------------------------------------------------------------


class SparkReplica(_Replica):
    replicas: IntOrRef | None = None


class SparkJob(_Run):
    REPLICAS = ("driver", "executor")
    kind: Literal["sparkjob"] = "sparkjob"
    connections: list[StrictStr] | Ref | None = None
    volumes: list[k8s.Volume] | Ref | None = None
    type: Literal["Java", "Scala", "Python", "R"] | None = None
    spark_version: StrictStr | None = None
    python_version: Literal["2", "3"] | None = None
    deploy_mode: Literal["cluster", "client", "in-cluster-client"] | None = None
    main_class: StrictStr | None = None
    main_application_file: StrictStr | None = None
    arguments: list[StrictStr] | Ref | None = None
    hadoop_conf: dict[StrictStr, GenericStr] | None = None
    spark_conf: dict[StrictStr, GenericStr] | None = None
    hadoop_config_map: StrictStr | None = None
    spark_config_map: StrictStr | None = None
    executor: SparkReplica | Ref | None = None
    driver: SparkReplica | Ref | None = None
