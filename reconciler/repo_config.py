"""The per-repo config file, `.polyaxon-reconciler.yaml` at the repo root.

It lives in the repo (not in the daemon settings) because it describes the repo's contents:
which files are operations, where the component hub is, what may be pruned. Pure: bytes in,
a model or located errors out. A missing file means defaults; a bad file means nothing from that
commit is applied, so every error carries `file:line:col`.

Daemon-side concerns (URL, credentials, poll interval) stay in `reconciler.config.RepoConfig`;
this model is named `RepoFileConfig` to keep the two apart.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Collection
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from reconciler import globs
from reconciler.errors import Located
from reconciler.model_errors import at, located_errors
from reconciler.yaml_nodes import YamlError
from reconciler.yaml_nodes import parse as parse_yaml

FILENAME = ".polyaxon-reconciler.yaml"
STAGE = "repo-config"

ForcePushPolicy = Literal["reject", "allow"]

DEFAULT_WATCH = ("**/*.yaml", "**/*.yml", "**/*.json")
# Hidden files and directories (.github/workflows, .pre-commit-config.yaml, ...) are YAML too but
# never polyaxonfiles; compiling them would only produce noise.
DEFAULT_IGNORE = ("**/.*", "**/.*/**")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_PROJECT = re.compile(rf"^({_NAME}/)?{_NAME}$")


class _Strict(BaseModel):
    # strict: a YAML string "yes" or the number 1 is not silently a boolean.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PrunePolicy(_Strict):
    """Per kind: may an operation's objects be deleted when it disappears from Git?

    Long-running kinds default to yes (they would run forever otherwise); batch kinds default
    to no so that removing a file never kills work in progress.
    """

    job: bool = False
    service: bool = True
    dag: bool = False
    matrix: bool = False
    tfjob: bool = False
    pytorchjob: bool = False
    mpijob: bool = False
    mxjob: bool = False
    xgbjob: bool = False
    rayjob: bool = False
    raycluster: bool = True
    daskjob: bool = False
    daskcluster: bool = True
    sparkjob: bool = False

    def allows(self, kind: str) -> bool:
        """Unknown kinds are never pruned."""
        return bool(getattr(self, kind, False)) if kind in type(self).model_fields else False


def _check_glob(pattern: str) -> str:
    problem = globs.glob_problem(pattern)
    if problem:
        raise ValueError(problem)
    return pattern


def _check_preview(pattern: str) -> str:
    if not pattern or "/" in pattern:
        raise ValueError(f"{pattern!r} must be an operation name or a glob over names (no '/')")
    return pattern


# Validated item by item so an error points at the offending list entry, not the whole list.
Glob = Annotated[str, AfterValidator(_check_glob)]
PreviewPattern = Annotated[str, AfterValidator(_check_preview)]


Concurrency = Literal["allow", "forbid", "replace"]
DEFAULT_STARTING_DEADLINE = 3600


class ScheduleOverride(_Strict):
    """Schedule settings for the operations whose names match a glob."""

    concurrency: Concurrency | None = None
    starting_deadline: int | None = Field(default=None, gt=0)


class SchedulePolicy(_Strict):
    """How ticks of scheduled operations behave, as Kubernetes CronJob's fields do.

    `concurrency`: a tick while the previous run is active still fires (allow), is recorded
    skipped (forbid), or stops the active run first (replace). `starting_deadline` (seconds): a
    tick missed while the daemon was down runs on catch-up only if it is at most this old.
    `ops` overrides both per operation name glob (the first matching glob wins).
    """

    concurrency: Concurrency = "allow"
    starting_deadline: int = Field(default=DEFAULT_STARTING_DEADLINE, gt=0)
    ops: dict[PreviewPattern, ScheduleOverride] = Field(default_factory=dict)

    def _override(self, op_name: str) -> ScheduleOverride | None:
        return next((o for glob, o in self.ops.items() if globs.match_any([glob], op_name)), None)

    def concurrency_for(self, op_name: str) -> Concurrency:
        found = self._override(op_name)
        return found.concurrency if found is not None and found.concurrency is not None else self.concurrency

    def starting_deadline_for(self, op_name: str) -> int:
        found = self._override(op_name)
        if found is not None and found.starting_deadline is not None:
            return found.starting_deadline
        return self.starting_deadline


def _relative_dir(value: str) -> str:
    stripped = value.rstrip("/")
    if globs.glob_problem(stripped) or any(ch in stripped for ch in "*?["):
        raise ValueError(f"{value!r} must be a relative directory path inside the repo (no globs, no '..')")
    return stripped


class RepoFileConfig(_Strict):
    watch: list[Glob] = Field(default_factory=lambda: list(DEFAULT_WATCH))
    ignore: list[Glob] = Field(default_factory=lambda: list(DEFAULT_IGNORE))
    hub_dir: str | None = None
    project: str | None = None
    # None: the daemon's namespace (`kubernetes.namespace`); another must be one the daemon may
    # use (`kubernetes.namespaces`), which `parse(..., namespaces=)` checks.
    namespace: str | None = None
    prune: PrunePolicy = Field(default_factory=PrunePolicy)
    force_push: ForcePushPolicy = "reject"
    timezone: str = "UTC"
    self_heal: bool = True
    previews: list[PreviewPattern] = Field(default_factory=list)
    # Who may get previews, read from the base branch only (reconciler.forge.trust): pull requests
    # from forks never unless this is true, and, when a label is named, only pull requests a
    # maintainer labelled with it (read back from the forge's API, never from the event).
    previews_from_forks: bool = False
    previews_require_label: str | None = Field(default=None, min_length=1, max_length=100)
    schedules: SchedulePolicy = Field(default_factory=SchedulePolicy)

    @field_validator("hub_dir")
    @classmethod
    def _valid_hub_dir(cls, value: str | None) -> str | None:
        return None if value is None else _relative_dir(value)

    @field_validator("project")
    @classmethod
    def _valid_project(cls, value: str | None) -> str | None:
        if value is not None and not _PROJECT.match(value):
            raise ValueError(f"{value!r} is not a project name ([owner/]name of letters, digits, '-', '_', '.')")
        return value

    @field_validator("namespace")
    @classmethod
    def _valid_namespace(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if len(value) > 63 or not _DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes namespace name (DNS-1123 label, at most 63 chars)")
        allowed = (info.context or {}).get("namespaces")
        if allowed is not None and value not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise ValueError(
                f"{value!r} is not allowed: this reconciler may use {names} "
                "(its settings' kubernetes.namespace and kubernetes.namespaces)"
            )
        return value

    def namespace_or(self, default: str) -> str:
        """The namespace runs go to: this repo's, or the daemon's `default`."""
        return self.namespace or default

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone name (e.g. 'UTC', 'Europe/Paris')") from None
        return value

    def watches(self, path: str) -> bool:
        """Is `path` (repo-relative) a file the compiler should read as an operation file?"""
        if path == FILENAME:
            return False
        return globs.match_any(self.watch, path) and not globs.match_any(self.ignore, path)

    def previewed(self, op_name: str) -> bool:
        return globs.match_any(self.previews, op_name)


def parse(
    data: bytes | None, path: str = FILENAME, *, namespaces: Collection[str] | None = None
) -> RepoFileConfig | list[Located]:
    """The config in `data` (None: the file does not exist), or every error with its location.

    `namespaces`: the namespaces the daemon may run in (None: any, as for the local backend); a
    repo naming another is an error like any other, so nothing of its commit is applied."""
    if data is None:
        return RepoFileConfig()
    try:
        doc = parse_yaml(data, allow_empty=True)
    except YamlError as exc:
        mark = exc.mark
        return [Located(path, mark.line if mark else None, mark.column if mark else None, exc.message, STAGE)]
    if doc.value is None:
        return RepoFileConfig()
    if not isinstance(doc.value, dict):
        return [at(doc, path, (), "the repo config must be a mapping of keys to values", STAGE)]
    try:
        context = {"namespaces": frozenset(namespaces) if namespaces is not None else None}
        return RepoFileConfig.model_validate(doc.value, context=context)
    except ValidationError as exc:
        return located_errors(doc, path, exc, RepoFileConfig, STAGE)
