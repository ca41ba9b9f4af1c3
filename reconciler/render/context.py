"""What every kind's renderer is given: the run, its filled spec, and the options from config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.model import LABEL_INSTANCE, RunRequest
from reconciler.render import templates


class RenderError(ValueError):
    """The run cannot become Kubernetes objects as written (an unsupported section, a DAG)."""


@dataclass(frozen=True)
class RenderOptions:
    """Settings that come from the repo config rather than the polyaxonfile.

    `connection_secrets` maps a connection name to the Secret holding its credentials; a
    connection listed there is mounted with `envFrom`, any other only gets its name as an env var.
    """

    connection_secrets: dict[str, str] = field(default_factory=dict)
    project: str = ""  # used when a run names none (`RunRequest.project`)
    # The daemon's identity, labelled on every object so only its own are adopted or pruned.
    instance: str = ""
    # ttlSecondsAfterFinished of a run's Job (and Kubeflow job) when its spec sets no
    # `termination.ttl`: the Job controller deletes finished Jobs (and their pods) after that long,
    # so a cron does not pile them up. None keeps them until retention deletes them.
    job_ttl_seconds: int | None = None
    git_image: str = "alpine/git:2.45.2"
    file_image: str = "busybox:1.36"


@dataclass(frozen=True)
class Context:
    run: RunRequest
    options: RenderOptions
    spec: dict[str, Any]  # the `run` section with templates filled
    termination: dict[str, Any]
    env_params: dict[str, str]  # params with `toEnv`: env var name -> value
    # What the backend gives every main container beyond the spec (the run's report token and the
    # daemon's URL); empty when rendering for a reader (`reconciler render`).
    run_env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run.name

    def labels(self) -> dict[str, str]:
        labels = self.run.labels()
        if self.options.instance:
            labels[LABEL_INSTANCE] = self.options.instance
        return labels

    def metadata(self, name: str | None = None) -> dict[str, Any]:
        return {
            "name": name or self.run.name,
            "namespace": self.run.namespace,
            "labels": self.labels(),
            "annotations": self.run.annotations(),
        }


def build(run: RunRequest, options: RenderOptions, run_env: Mapping[str, str] | None = None) -> Context:
    effective = run.effective
    run_section = effective.get("run")
    if not isinstance(run_section, dict):
        raise RenderError(f"run {run.name}: the operation has no run section")
    values = templates.param_values(effective, run.params)
    ports = run_section.get("ports") if isinstance(run_section.get("ports"), list) else []
    context = {
        "params": values,
        "globals": templates.globals_for(
            run_name=run.name,
            namespace=run.namespace,
            project=run.project or options.project or run.op.repo,
            ports=list(ports or []),
        ),
    }
    env_params: dict[str, str] = {}
    for name, param in (effective.get("params") or {}).items():
        if isinstance(param, dict) and param.get("toEnv") and name in values:
            env_params[str(param["toEnv"])] = str(templates.fill(values[name], context))
    return Context(
        run=run,
        options=options,
        spec=templates.fill(run_section, context),
        termination=templates.fill(effective.get("termination") or {}, context),
        env_params=env_params,
        run_env=dict(run_env or {}),
    )
