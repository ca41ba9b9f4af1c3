"""From a run request to the process the local backend starts: argv, env, working dir.

Pure: the filesystem check for the working dir is passed in, so the translation is tested with
plain data. Rules (documented in the README):

- Only kinds that are one container can run as a process: job, service, notifier, cleaner,
  tuner. Distributed and operator kinds need the Kubernetes backend (`unschedulable`); DAGs are
  orchestrated by the reconciler itself and never reach a backend.
- argv is the container's `command` followed by its `args`, as Kubernetes does. A `command`
  written as one string is a shell line: `/bin/sh -c "<command> <args...>"`. Polyaxon's `cmd`
  shortcut already compiles to `["/bin/sh", "-c", "set -e\\n..."]`, so it runs as written. Without
  a command, `args` is the argv (there is no image entrypoint to prepend).
- The image is not pulled: the command runs on this machine with whatever is installed here.
- `{{ ... }}` templates are rendered from the params (operation params over input/output
  defaults, over nothing) and Polyaxon-like globals pointing into the run's directory.
- The environment is built, never inherited from the daemon (whose own holds forge tokens and
  cloud keys): `PATH` (the search path the backend gives: the daemon's, which is no secret and
  finds what is installed here, else `DEFAULT_PATH`), `HOME` (the run's home, `<run dir>/home`),
  `LANG`, `TZ`, the `POLYAXON_*` variables below, then the container's declared `env`, which
  may override any of them.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.backends.base import PermanentBackendError, UnsupportedKind
from reconciler.backends.local.templates import TemplateError, as_text, render_value
from reconciler.model import RunRequest

PROCESS_KINDS = frozenset({"job", "service", "notifier", "cleaner", "tuner"})
LONG_RUNNING_KINDS = frozenset({"service"})
OPERATOR_KINDS = frozenset(
    {
        "tfjob",
        "pytorchjob",
        "mpijob",
        "mxjob",
        "xgbjob",
        "paddlejob",
        "rayjob",
        "daskjob",
        "sparkjob",
        "raycluster",
        "daskcluster",
    }
)

# The whole environment of a local run: these, the POLYAXON_* variables, the declared `env`.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_ENV = {"LANG": "C.UTF-8", "TZ": "UTC"}
ENV_OUTPUTS = "POLYAXON_RUN_OUTPUTS_PATH"  # the outputs file (JSON object or JSON lines)
ENV_ARTIFACTS = "POLYAXON_RUN_ARTIFACTS_PATH"
ENV_UUID = "POLYAXON_RUN_UUID"
ENV_NAME = "POLYAXON_RUN_NAME"

# Run uuids are derived from run names so they survive daemon restarts and match on re-render.
_UUID_NAMESPACE = uuid.UUID("6f1d2c1e-8a4b-4c55-9b0e-2f7e1c3a9d40")


def run_uuid(name: str) -> str:
    return uuid.uuid5(_UUID_NAMESPACE, name).hex


@dataclass(frozen=True)
class RunPaths:
    """Where a run lives on disk; see `store.RunDir` for the whole layout."""

    run_dir: Path
    outputs_file: Path

    @property
    def artifacts(self) -> Path:
        return self.run_dir / "artifacts"

    @property
    def run_outputs(self) -> Path:
        return self.artifacts / "outputs"

    @property
    def home(self) -> Path:
        """HOME and the default working dir: the one place of the run directory the run owns
        when it runs as another user (the rest is the backend's record of it)."""
        return self.run_dir / "home"


@dataclass(frozen=True)
class LaunchSpec:
    """The process to start for every attempt of a run; stored with the run so retries after a
    daemon restart start exactly the same thing."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    image: str | None = None
    long_running: bool = False
    max_retries: int = 0
    timeout: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "env": self.env,
            "cwd": self.cwd,
            "image": self.image,
            "long_running": self.long_running,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LaunchSpec:
        return cls(
            argv=tuple(data["argv"]),
            env=dict(data["env"]),
            cwd=str(data["cwd"]),
            image=data.get("image"),
            long_running=bool(data.get("long_running", False)),
            max_retries=int(data.get("max_retries", 0)),
            timeout=data.get("timeout"),
            warnings=tuple(data.get("warnings", ())),
        )

    def note(self) -> str:
        """What a status message says about where this runs (and what was left out)."""
        parts = []
        if self.image:
            parts.append(f"image {self.image} not pulled; running the command on this machine")
        else:
            parts.append("running the command on this machine")
        parts.extend(self.warnings)
        return "; ".join(parts)


class _Param(dict[str, Any]):
    """`{{ params.x }}` prints the value; `{{ params.x.value }}`, `.as_arg`, ... the details."""

    def __str__(self) -> str:
        return as_text(self.get("value"))


def check_kind(kind: str) -> None:
    """Raise the error that tells the user where a kind can run, if not here."""
    if kind in PROCESS_KINDS:
        return
    if kind == "dag":
        raise UnsupportedKind("DAG runs are orchestrated by the reconciler, not submitted to a backend")
    if kind in OPERATOR_KINDS:
        raise UnsupportedKind(
            f"the local backend cannot run {kind} (it needs an operator or several replicas); "
            "use the kubernetes backend (backend: kubernetes)"
        )
    raise PermanentBackendError(f"unknown run kind {kind!r}", status="failed")


def _unwrap(value: Any) -> Any:
    if (
        isinstance(value, dict)
        and "value" in value
        and set(value)
        <= {
            "value",
            "ref",
            "contextOnly",
            "connection",
            "toInit",
            "toEnv",
        }
    ):
        return value["value"]
    return value


def _as_arg(name: str, value: Any, type_: str | None) -> str:
    if value is None:
        return ""
    if type_ == "bool" or isinstance(value, bool):
        return f"--{name}" if value else ""
    return f"--{name}={as_text(value)}"


def globals_for(run: RunRequest, paths: RunPaths) -> dict[str, Any]:
    run_id = run_uuid(run.name)
    ports = (run.effective.get("run") or {}).get("ports") or []
    return {
        "owner_name": "local",
        "project_name": run.project_name,
        "project_unique_name": f"local.{run.project_name}",
        "run_info": f"local.{run.project_name}.runs.{run_id}",
        "name": run.name,
        "run_name": run.name,
        "uuid": run_id,
        "namespace": run.namespace,
        "context_path": str(paths.run_dir),
        "artifacts_path": str(paths.artifacts),
        "run_artifacts_path": str(paths.artifacts),
        "run_outputs_path": str(paths.run_outputs),
        "ports": ports,
        "base_url": "/",
        "iteration": run.params.get("iteration", run.effective.get("iteration")),
        "cloning_kind": None,
        "original_uuid": None,
    }


def template_context(run: RunRequest, paths: RunPaths) -> dict[str, Any]:
    """Params (top level and under `params`) and globals, as Polyaxon's run context has them."""
    glob = globals_for(run, paths)
    declared: dict[str, dict[str, Any]] = {}
    for section in ("inputs", "outputs"):
        for io in run.effective.get(section) or []:
            if isinstance(io, dict) and "name" in io:
                declared[io["name"]] = io
    values: dict[str, Any] = {name: io.get("value") for name, io in declared.items()}
    for name, param in (run.effective.get("params") or {}).items():
        values[name] = _unwrap(param)
    for name, value in run.params.items():
        values[name] = _unwrap(value)
    # Param values may themselves use globals (`value: "{{ globals.run_outputs_path }}/model"`).
    values = {k: render_value(v, {"globals": glob}) for k, v in values.items()}
    params: dict[str, Any] = {}
    for name, value in values.items():
        io = declared.get(name, {})
        raw = (run.effective.get("params") or {}).get(name)
        params[name] = _Param(
            value=value,
            as_str="" if value is None else as_text(value),
            as_arg=_as_arg(name, value, io.get("type")),
            type=io.get("type"),
            connection=raw.get("connection") if isinstance(raw, dict) else None,
        )
    return {**values, "params": params, "globals": glob, "inputs": values, "outputs": {}}


def _argv(container: Mapping[str, Any]) -> list[str]:
    command = container.get("command")
    args = container.get("args")
    arg_list = [args] if isinstance(args, str) else [str(a) for a in (args or [])]
    if isinstance(command, str):
        line = " ".join([command, *(shlex.quote(a) for a in arg_list)]) if arg_list else command
        return ["/bin/sh", "-c", line]
    argv = [str(c) for c in (command or [])] + arg_list
    if not argv:
        raise PermanentBackendError(
            "the container has neither command nor args; the local backend cannot use an image's entrypoint",
            status="failed",
        )
    return argv


def _termination(run: RunRequest) -> tuple[int, float | None]:
    termination = run.effective.get("termination") or {}
    retries = termination.get("maxRetries") or 0
    timeout = termination.get("timeout")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise PermanentBackendError(f"termination.maxRetries must be a non-negative integer, got {retries!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise PermanentBackendError(f"termination.timeout must be a positive number of seconds, got {timeout!r}")
    return retries, float(timeout) if timeout is not None else None


def build_launch(
    run: RunRequest,
    paths: RunPaths,
    *,
    is_dir: Callable[[str], bool] = lambda p: Path(p).is_dir(),
    search_path: str = DEFAULT_PATH,
) -> LaunchSpec:
    """The process for `run`, or a `PermanentBackendError` saying why it cannot run here."""
    check_kind(run.kind)
    spec = run.effective.get("run") or {}
    container = spec.get("container")
    if not isinstance(container, dict):
        raise PermanentBackendError(f"the {run.kind} has no container to run", status="failed")
    context = template_context(run, paths)
    warnings: list[str] = []
    try:
        rendered = render_value(
            {k: container.get(k) for k in ("command", "args", "env", "workingDir", "image")}, context
        )
    except TemplateError as error:
        raise PermanentBackendError(str(error), status="failed") from error
    argv = _argv(rendered)
    env: dict[str, str] = {
        **BASE_ENV,
        "PATH": search_path,
        "HOME": str(paths.home),
        ENV_UUID: context["globals"]["uuid"],
        ENV_NAME: run.name,
        ENV_OUTPUTS: str(paths.outputs_file),
        ENV_ARTIFACTS: str(paths.artifacts),
    }
    skipped: list[str] = []
    for item in rendered.get("env") or []:
        if not isinstance(item, dict) or "name" not in item:
            continue
        if "value" in item:
            env[str(item["name"])] = "" if item["value"] is None else as_text(item["value"])
        else:
            skipped.append(str(item["name"]))
    if skipped:
        warnings.append(f"env valueFrom is not supported locally, not set: {', '.join(skipped)}")
    if container.get("envFrom"):
        warnings.append("envFrom is not supported locally and was ignored")
    cwd = str(paths.home)
    working_dir = rendered.get("workingDir")
    if working_dir:
        if is_dir(str(working_dir)):
            cwd = str(working_dir)
        else:
            warnings.append(f"workingDir {working_dir} does not exist on this machine; using the run's home")
    retries, timeout = _termination(run)
    image = rendered.get("image")
    return LaunchSpec(
        argv=tuple(argv),
        env=env,
        cwd=cwd,
        image=str(image) if image else None,
        long_running=run.kind in LONG_RUNNING_KINDS,
        max_retries=retries,
        timeout=timeout,
        warnings=tuple(warnings),
    )
