"""`reconciler render`: print the Kubernetes manifests of polyaxonfiles, like `helm template`.

Runs the same pipeline as the daemon (validate, compose, render) without a cluster, so users see
exactly what would be applied. Run names depend on the commit that causes the run, so the files'
git HEAD is used when there is one.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer

from reconciler.model import Cause, OpKey, RunRequest, run_name, spec_hash
from reconciler.render import RenderError, to_yaml
from reconciler.render import render as render_run
from reconciler.spec import FileResult, compose, validate_paths

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _git(folder: str, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _origin(path: str) -> tuple[str, str, str]:
    """(repo name, path in repo, commit) for a file, from its git checkout when it has one."""
    folder = os.path.dirname(os.path.abspath(path))
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top is None:
        return "local", os.path.basename(path), "local"
    commit = _git(folder, "rev-parse", "HEAD") or "local"
    return os.path.basename(top), os.path.relpath(os.path.abspath(path), top), commit


def _operations(result: FileResult) -> list[tuple[str, dict[str, Any]]]:
    """(op name, effective spec) of a file; a DAG gives each of its operations instead."""
    assert result.checked is not None
    effective = result.checked.effective
    dag = result.checked.spec.dag
    if dag is None or not isinstance(dag.operations, list):
        return [(result.op_name, effective)]
    listed = dag.components if isinstance(dag.components, list) else []
    components = {c.name: c for c in listed if c.name}
    return [
        (f"{result.op_name}.{op.name}", compose(op, is_dag_node=True, components=components)) for op in dag.operations
    ]


def render(
    path: Annotated[Path, typer.Argument(help="A polyaxonfile, or a directory of them.")],
    op: Annotated[str | None, typer.Option("--op", help="Only the operation with this name.")] = None,
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the objects.")] = "default",
) -> None:
    """Print the Kubernetes manifests of polyaxonfiles as multi-document YAML."""
    if not path.exists():
        typer.echo(f"error: no such file or directory: {path}", err=True)
        raise typer.Exit(EXIT_USAGE)
    failed = False
    found = False
    for result in validate_paths([str(path)]):
        if result.skipped is not None:
            continue
        if not result.valid or result.checked is None:
            for error in result.errors:
                typer.echo(str(error), err=True)
            failed = True
            continue
        repo, rel, commit = _origin(result.path)
        for name, effective in _operations(result):
            if op is not None and name != op and name.split(".")[-1] != op:
                continue
            found = True
            key = OpKey(repo, rel, name)
            digest = spec_hash(effective)
            kind = str((effective.get("run") or {}).get("kind") or "")
            run = RunRequest(
                name=run_name(key, digest, commit),
                op=key,
                kind=kind,
                spec_hash=digest,
                effective=effective,
                cause=Cause.COMMIT,
                cause_id=commit,
                commit=commit,
                namespace=namespace,
            )
            try:
                manifests = render_run(run)
            except RenderError as e:
                typer.echo(f"{result.path}: {e}", err=True)
                failed = True
                continue
            typer.echo(to_yaml(manifests, header=f"Source: {key}"), nl=False)
    if op is not None and not found and not failed:
        typer.echo(f"error: no operation named {op!r} in {path}", err=True)
        raise typer.Exit(EXIT_USAGE)
    raise typer.Exit(EXIT_INVALID if failed else EXIT_OK)
