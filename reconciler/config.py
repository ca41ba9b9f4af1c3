"""Daemon settings: one YAML file plus `RECONCILER_*` environment overrides.

Secrets (forge tokens, webhook secrets) are never values in this file: only paths to files or
names of environment variables, so the config can be committed and shown without leaking them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from reconciler.errors import Located

ForgeProvider = Literal["github", "gitlab", "gitea"]


def default_data_dir() -> Path:
    """Where the embedded SQLite database and logs live (XDG data dir)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "polyaxon-reconciler"


def default_database_url() -> str:
    return f"sqlite:///{default_data_dir() / 'reconciler.db'}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ForgeConfig(_Strict):
    provider: ForgeProvider
    project: str
    api_url: str | None = None
    token_file: Path | None = None
    token_env: str | None = None
    webhook_secret_file: Path | None = None
    webhook_secret_env: str | None = None
    # How often the open pull requests are listed from the forge's API, to check a head no
    # webhook announced (a delivery lost, the daemon down) and stop the previews of pull requests
    # closed meanwhile; 0: webhooks only.
    pull_request_sweep_seconds: float = Field(default=300.0, ge=0)


class RepoConfig(_Strict):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")
    url: str
    branch: str = "main"
    interval: float = Field(default=60.0, gt=0, description="seconds between polls")
    forge: ForgeConfig | None = None
    # HTTPS credentials for the git remote, from a file or the environment only.
    token_file: Path | None = None
    token_env: str | None = None


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # How users reach this server (behind an ingress): commit statuses link to its run pages.
    public_url: str | None = None
    # The API's bearer token (reconciler.server.guard), from a file (mode 0600) or a variable.
    token_file: Path | None = None
    token_env: str | None = None
    # More Host names the API and pages answer to (besides localhost, `host`, public_url's host).
    allowed_hosts: list[str] = Field(default_factory=list)
    # May the dashboard's pages (never run logs) be read without the token? None: yes when `host`
    # is a loopback address, no elsewhere (reconciler.server.guard).
    anonymous_read: bool | None = None
    # The URL runs reach this server at, to report metrics and outputs (POLYAXON_RECONCILER_URL).
    # None: http://<host>:<port> for local runs (127.0.0.1 when host is a wildcard); Kubernetes
    # pods get it only when set (e.g. http://polyaxon-reconciler.polyaxon-reconciler.svc).
    runs_url: str | None = None


class LocalConfig(_Strict):
    # When the daemon runs as root, local runs run as this user (reconciler.backends.local.users);
    # otherwise they share the daemon's user. Naming root here runs them as root.
    run_as: str = Field(default="nobody", min_length=1)


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _namespace_name(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes namespace name (DNS-1123 label, at most 63 chars)")
    return value


NamespaceName = Annotated[str, AfterValidator(_namespace_name)]


class KubernetesConfig(_Strict):
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    # Where a repo's runs go unless its `.polyaxon-reconciler.yaml` names another namespace.
    namespace: NamespaceName = "default"
    # The other namespaces a repo may name; each needs the daemon's Role there (manifests/rbac.yaml).
    # A repo naming a namespace outside these and `namespace` is refused (nothing of it applied).
    namespaces: list[NamespaceName] = Field(default_factory=list)
    # Server-side apply takes over fields another manager owns (kubectl edits, an HPA's replicas)
    # instead of reporting the conflict and leaving them.
    force_conflicts: bool = False
    # Finished Jobs (and Kubeflow jobs) are deleted by Kubernetes this long after they end, unless
    # the spec's own `termination.ttl` says otherwise; null keeps them (retention deletes them
    # with their runs). Their logs go with them: `runs logs` cannot read a deleted run's pods.
    job_ttl_seconds: int | None = Field(default=86400, ge=0)

    @property
    def all_namespaces(self) -> tuple[str, ...]:
        """`namespace` first, then the others, each once."""
        return tuple(dict.fromkeys([self.namespace, *self.namespaces]))


class RetentionConfig(_Strict):
    """How long finished runs (and their files: local run directories, Kubernetes objects) are
    kept. A run is forgotten when it finished more than `runs_days` ago and is not among its
    operation's newest `keep_per_op` runs; active runs are never forgotten."""

    runs_days: float = Field(default=90, gt=0)
    keep_per_op: int = Field(default=100, ge=1)
    interval_seconds: float = Field(default=3600, gt=0)
    batch: int = Field(default=500, ge=1)  # runs forgotten per pass


class ShardingConfig(_Strict):
    """Several replicas share the repos (reconciler.sharding): each repo is owned by one live
    replica at a time, through leases in Kubernetes (`kubernetes`: coordination.k8s.io/v1 Leases
    in `kubernetes.namespace`) or in the tracking PostgreSQL (`database`)."""

    mode: Literal["kubernetes", "database"]
    # A replica that stops renewing loses its repos this long after its last renewal; it renews
    # every third of it.
    lease_seconds: float = Field(default=15, ge=3, le=3600)
    # This replica's name among the others; None: the pod name (HOSTNAME), else host-pid.
    identity: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECONCILER_", env_nested_delimiter="__", extra="forbid")

    repos: list[RepoConfig] = Field(default_factory=list)
    backend: Literal["local", "kubernetes"] = "local"
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    local: LocalConfig = Field(default_factory=LocalConfig)
    database: str = Field(default_factory=default_database_url)
    data_dir: Path = Field(default_factory=default_data_dir)
    server: ServerConfig = Field(default_factory=ServerConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"
    sharding: ShardingConfig | None = None

    @property
    def run_namespaces(self) -> tuple[str, ...] | None:
        """The namespaces a repo config may name; None: any (local runs have no namespace)."""
        return self.kubernetes.all_namespaces if self.backend == "kubernetes" else None

    @field_validator("repos")
    @classmethod
    def _unique_repo_names(cls, repos: list[RepoConfig]) -> list[RepoConfig]:
        seen: set[str] = set()
        for repo in repos:
            if repo.name in seen:
                raise ValueError(f"duplicate repo name {repo.name!r}")
            seen.add(repo.name)
        return repos

    @model_validator(mode="after")
    def _sharding_needs_shared_parts(self) -> Settings:
        if self.sharding is None:
            return self
        if self.database.split(":", 1)[0].split("+", 1)[0] == "sqlite":
            raise ValueError(
                "sharding needs PostgreSQL: replicas share runs, schedules and leases through one tracking "
                "database, and SQLite is a file of one process (set database: postgresql+psycopg://..., "
                "or remove sharding for a single replica)"
            )
        if self.backend == "local":
            raise ValueError(
                "sharding needs backend: kubernetes: local runs are processes of one host, which another "
                "replica can neither watch nor take over (remove sharding for a single replica)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file, which arrives as init kwargs.
        return (env_settings, init_settings)


STAGE = "settings"


class SettingsError(ValueError):
    """The settings file is not valid: every problem as `file:line:col: message`."""

    def __init__(self, errors: list[Located]) -> None:
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors


def load_settings(path: Path | None) -> Settings:
    """Read the YAML file (if any) and apply `RECONCILER_*` overrides on top; `SettingsError`
    places each problem in the file (an override's problem names its key)."""
    from reconciler.model_errors import at, located_errors
    from reconciler.yaml_nodes import YamlError
    from reconciler.yaml_nodes import parse as parse_yaml

    data: dict[str, Any] = {}
    where = str(path) if path is not None else "settings"
    doc = parse_yaml(b"{}")
    if path is not None:
        try:
            doc = parse_yaml(path.read_bytes(), allow_empty=True)
        except YamlError as e:
            mark = e.mark
            raise SettingsError(
                [Located(where, mark.line if mark else None, mark.column if mark else None, str(e), STAGE)]
            ) from None
        if doc.value is not None and not isinstance(doc.value, dict):
            raise SettingsError([at(doc, where, (), "the settings file must be a mapping of keys to values", STAGE)])
        data = doc.value or {}
    try:
        return Settings(**data)
    except ValidationError as e:
        raise SettingsError(located_errors(doc, where, e, Settings, STAGE)) from None
