"""`reconciler validate`: check polyaxonfiles like a compiler, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reconciler.spec import FileResult, validate_paths

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _url_map(values: list[str]) -> list[tuple[str, str]]:
    maps: list[tuple[str, str]] = []
    for value in values:
        prefix, sep, folder = value.partition("=")
        if not sep or not prefix or not folder:
            typer.echo(f"error: --url-map expects PREFIX=DIR, got {value!r}", err=True)
            raise typer.Exit(EXIT_USAGE)
        maps.append((prefix, folder))
    return maps


def _json_row(result: FileResult) -> str:
    return json.dumps(
        {
            "path": result.path,
            "valid": result.valid,
            "errors": [{"line": e.line, "column": e.column, "message": e.message} for e in result.errors],
        }
    )


def validate(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (walked for *.yaml, *.yml, *.json).")],
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
    hub_dir: Annotated[Path | None, typer.Option(help="Serve hubRef NAME[:TAG] from DIR/NAME/TAG.yaml.")] = None,
    url_map: Annotated[
        list[str] | None, typer.Option(help="Read urlRefs starting with PREFIX from DIR (PREFIX=DIR).")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Also list skipped files and Kubernetes lint warnings.")
    ] = False,
) -> None:
    """Validate polyaxonfiles: `path:line:col: message` per error, exit 1 if any file is invalid."""
    if output_format not in ("text", "json"):
        typer.echo(f"error: --format must be text or json, got {output_format!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        typer.echo(f"error: no such file or directory: {', '.join(missing)}", err=True)
        raise typer.Exit(EXIT_USAGE)
    results = validate_paths(
        [str(p) for p in paths], hub_dir=str(hub_dir) if hub_dir else None, url_maps=_url_map(url_map or [])
    )
    checked = [r for r in results if r.skipped is None]
    invalid = [r for r in checked if not r.valid]
    if output_format == "json":
        for result in checked:
            typer.echo(_json_row(result))
    else:
        for result in results:
            if result.skipped is not None:
                if verbose:
                    typer.echo(f"{result.path}: skipped ({result.skipped})")
                continue
            for error in result.errors:
                typer.echo(str(error))
            for warning in result.warnings:
                # What could not be checked is always said; Kubernetes lint only with -v.
                if verbose or warning.stage != "lint":
                    typer.echo(f"{warning} [warning]")
        skipped = len(results) - len(checked)
        summary = f"{len(checked)} file(s) checked, {len(invalid)} invalid"
        if skipped:
            summary += f", {skipped} skipped (not polyaxonfiles)"
        typer.echo(summary, err=bool(invalid))
    raise typer.Exit(EXIT_INVALID if invalid else EXIT_VALID)
