"""The smaller sections of a polyaxonfile: environment, init, cache, termination, plugins,
hooks, build, joins, events, templates and mounts."""

from enum import Enum, StrEnum
from typing import Any, Literal, Self

from pydantic import Field, StrictInt, StrictStr, field_validator, model_validator

from reconciler.spec import k8s
from reconciler.spec.base import BoolOrRef, GenericStr, IntOrRef, Ref, SpecModel
from reconciler.spec.io import Param
from reconciler.statuses import EVENT_KINDS
from reconciler.statuses import Status as RunStatus


class Environment(SpecModel):
    labels: dict[StrictStr, GenericStr] | None = None
    annotations: dict[StrictStr, GenericStr] | None = None
    node_selector: dict[StrictStr, GenericStr] | None = None
    affinity: k8s.Affinity | None = None
    tolerations: list[k8s.Toleration] | None = None
    node_name: StrictStr | None = None
    service_account_name: StrictStr | None = None
    host_aliases: list[k8s.HostAlias] | None = None
    security_context: k8s.SecurityContext | None = None
    image_pull_secrets: list[StrictStr] | None = None
    host_network: bool | None = None
    host_pid: bool | None = Field(default=None, alias="hostPID")
    dns_policy: StrictStr | None = None
    dns_config: k8s.PodDNSConfig | None = None
    scheduler_name: StrictStr | None = None
    priority_class_name: StrictStr | None = None
    priority: int | None = None
    restart_policy: Literal["Always", "OnFailure", "Never", "ExitCode"] | None = None


class GitInit(SpecModel):
    url: StrictStr | None = None
    revision: StrictStr | None = None
    flags: list[StrictStr] | Ref | None = None


class ArtifactsInit(SpecModel):
    files: list[str | list[str]] | Ref | None = None
    dirs: list[str | list[str]] | Ref | None = None
    workers: IntOrRef | None = None


class DockerfileInit(SpecModel):
    image: str
    env: dict[str, Any] | list[tuple[str, str] | list[str]] | Ref | None = None
    path: list[StrictStr] | Ref | None = None
    copy_: list[StrictStr | list[StrictStr]] | Ref | None = Field(default=None, alias="copy")
    post_run_copy: list[StrictStr | list[StrictStr]] | Ref | None = None
    run: list[StrictStr] | Ref | None = None
    lang_env: StrictStr | None = None
    uid: int | Ref | None = None
    gid: int | Ref | None = None
    username: StrictStr | None = None
    filename: StrictStr | None = None
    workdir: StrictStr | None = None
    workdir_path: StrictStr | None = None
    shell: StrictStr | None = None


class FileInit(SpecModel):
    kind: StrictStr | None = None
    content: str
    filename: StrictStr | None = None
    chmod: StrictStr | None = None


class TensorboardInit(SpecModel):
    port: IntOrRef | None = None
    uuids: list[StrictStr] | Ref | None = None
    use_names: BoolOrRef | None = None
    path_prefix: StrictStr | None = None
    plugins: list[StrictStr] | Ref | None = None


class Init(SpecModel):
    artifacts: ArtifactsInit | Ref | None = None
    paths: list[list[StrictStr] | StrictStr] | StrictStr | None = None
    git: GitInit | Ref | None = None
    dockerfile: DockerfileInit | Ref | None = None
    file: FileInit | Ref | None = None
    tensorboard: TensorboardInit | Ref | None = None
    lineage_ref: StrictStr | None = None
    model_ref: StrictStr | None = None
    artifact_ref: StrictStr | None = None
    connection: StrictStr | None = None
    path: StrictStr | None = None
    container: k8s.Container | Ref | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        sources = [
            name
            for name in (
                "artifacts",
                "paths",
                "git",
                "dockerfile",
                "file",
                "tensorboard",
                "lineage_ref",
                "model_ref",
                "artifact_ref",
            )
            if getattr(self, name) is not None
        ]
        if len(sources) > 1:
            raise ValueError(f"an init entry takes one source, got {', '.join(sources)}")
        return self


class CacheSection(StrEnum):
    containers = "containers"
    init = "init"
    connections = "connections"


class Cache(SpecModel):
    disable: BoolOrRef | None = None
    ttl: IntOrRef | None = None
    io: list[StrictStr] | Ref | None = None
    sections: list[CacheSection] | Ref | None = None


class Culling(SpecModel):
    timeout: int | None = None


class ActivityProbe(SpecModel):
    exec_: k8s.ExecAction | None = Field(default=None, alias="exec")
    http: k8s.HTTPGetAction | None = None


class Termination(SpecModel):
    max_retries: IntOrRef | None = None
    ttl: IntOrRef | None = None
    timeout: IntOrRef | None = None
    culling: Culling | None = None
    probe: ActivityProbe | None = None
    pod_failure_policy: k8s.PodFailurePolicy | Ref | None = None


Status = RunStatus
EventKind = Enum("EventKind", {s: s for s in EVENT_KINDS}, type=str)  # type: ignore[misc]


class Notification(SpecModel):
    connections: list[StrictStr]
    trigger: Status | None = None


class SidecarContainer(SpecModel):
    image: StrictStr | None = None
    image_tag: StrictStr | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    sleep_interval: IntOrRef | None = None
    sync_interval: IntOrRef | None = None
    monitor_logs: BoolOrRef | None = None
    monitor_spec: BoolOrRef | None = None
    no_connections: BoolOrRef | None = None
    resources: dict[str, Any] | Ref | None = None


class Plugins(SpecModel):
    auth: BoolOrRef | None = None
    docker: BoolOrRef | None = None
    shm: BoolOrRef | None = None
    tmux: BoolOrRef | None = None
    sandbox: BoolOrRef | None = None
    ssh: BoolOrRef | None = None
    mount_artifacts_store: BoolOrRef | None = None
    collect_artifacts: BoolOrRef | None = None
    collect_logs: BoolOrRef | None = None
    collect_resources: BoolOrRef | None = None
    sync_statuses: BoolOrRef | None = None
    auto_resume: BoolOrRef | None = None
    log_level: StrictStr | None = None
    external_host: BoolOrRef | None = None
    sidecar: SidecarContainer | Ref | None = None
    notifications: list[Notification] | Ref | None = None


# Hooks fire on final statuses only.
HOOK_TRIGGERS = ("succeeded", "failed", "stopped", "done", "skipped", "upstream_failed")


class Hook(SpecModel):
    hub_ref: str
    connection: StrictStr | None = None
    trigger: Status | None = None
    conditions: StrictStr | None = None
    presets: list[StrictStr] | None = None
    queue: StrictStr | None = None
    namespace: StrictStr | None = None
    params: dict[str, Param] | Ref | None = None
    disable_defaults: BoolOrRef | None = None

    @field_validator("trigger")
    @classmethod
    def _final_status(cls, trigger: Any) -> Any:
        if trigger is not None and trigger.value not in HOOK_TRIGGERS:
            raise ValueError(f"hooks trigger on a final status ({', '.join(HOOK_TRIGGERS)}), not {trigger.value!r}")
        return trigger


class Build(SpecModel):
    hub_ref: str
    connection: StrictStr | None = None
    presets: list[StrictStr] | Ref | None = None
    queue: StrictStr | None = None
    namespace: StrictStr | None = None
    cache: Cache | Ref | None = None
    params: dict[str, Param | Ref] | None = None
    run_patch: dict[str, Any] | None = None
    patch_strategy: Literal["replace", "isnull", "post_merge", "pre_merge"] | Ref | None = None


class Join(SpecModel):
    ref: StrictStr | None = None
    query: str
    sort: StrictStr | None = None
    limit: IntOrRef | None = None
    offset: IntOrRef | None = None
    params: dict[str, Param] | Ref | None = None


class EventTrigger(SpecModel):
    kinds: list[EventKind | Ref]
    ref: str


class Template(SpecModel):
    enabled: BoolOrRef | None = None
    description: StrictStr | None = None
    fields: list[StrictStr] | Ref | None = None


class Mount(SpecModel):
    path_from: StrictStr | None = Field(default=None, alias="from")
    path_to: StrictStr | None = Field(default=None, alias="to")


TriggerPolicy = Literal["all_succeeded", "all_failed", "all_done", "one_succeeded", "one_failed", "one_done"]
PatchStrategy = Literal["replace", "isnull", "post_merge", "pre_merge"]

__all__ = ["StrictInt"]
