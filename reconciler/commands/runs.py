"""`reconciler runs list|show|logs|stop` and `reconciler ops list`: read the tracking DB.

Reading needs only the database. Logs and stop act on the backend, which belongs to the running
daemon (a local run's process group, the cluster watch), so they go through the daemon's HTTP
API; `logs` falls back to the local backend's log files when no daemon answers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from reconciler.commands.settings import ConfigOption, settings_or_exit
from reconciler.config import Settings

if TYPE_CHECKING:
    import urllib.request

runs_app = typer.Typer(help="Runs the reconciler started, from the tracking database.", no_args_is_help=True)
ops_app = typer.Typer(help="Operations compiled from the repos.", no_args_is_help=True)

FormatOption = Annotated[str, typer.Option("--format", help="text or json")]


def _store(settings: Settings) -> Any:
    from reconciler.tracking import DatabaseNotReady, Reader, check_ready

    try:
        check_ready(settings.database)
    except DatabaseNotReady as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    return Reader.open(settings.database)


def emit_rows(rows: list[dict[str, Any]], output_format: str, nothing: str) -> bool:
    """Print `rows` as JSON, or say there is nothing; True when done (text rows are the caller's)."""
    if output_format == "json":
        typer.echo(json.dumps(rows, indent=2))
        return True
    if not rows:
        typer.echo(nothing)
        return True
    return False


def _check_format(fmt: str) -> None:
    if fmt not in ("text", "json"):
        typer.echo(f"error: --format must be text or json, got {fmt!r}", err=True)
        raise typer.Exit(2)


@runs_app.command("list")
def list_runs(
    config: ConfigOption = None,
    output_format: FormatOption = "text",
    repo: Annotated[str | None, typer.Option(help="Only this repo's runs.")] = None,
    op: Annotated[str | None, typer.Option(help="Only this operation's runs (repo:path#name).")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs in this status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List runs, newest first. JSON: an array of {name, op, status, cause, commit, created_at, ...}."""
    from reconciler.views import run_row

    _check_format(output_format)
    store = _store(settings_or_exit(config))
    try:
        rows = [run_row(run, key) for run, key in store.list_runs(repo=repo, op_key=op, status=status, limit=limit)]
    finally:
        store.close()
    if emit_rows(rows, output_format, "no runs"):
        return
    typer.echo(f"{'NAME':<44} {'STATUS':<14} {'CAUSE':<9} {'COMMIT':<12} {'CREATED':<20} OP")
    for r in rows:
        typer.echo(
            f"{r['name']:<44} {r['status']:<14} {r['cause']:<9} {(r['commit'] or '')[:12]:<12} "
            f"{r['created_at'][:19]:<20} {r['op']}"
        )


@runs_app.command("show")
def show_run(name: str, config: ConfigOption = None, output_format: FormatOption = "text") -> None:
    """One run with its status history."""
    from reconciler.views import run_row

    _check_format(output_format)
    store = _store(settings_or_exit(config))
    try:
        found = store.list_runs(name=name)
        if not found:
            typer.echo(f"error: no run named {name}", err=True)
            raise typer.Exit(1)
        [(run, key)] = found
        row = run_row(run, key)
        row["history"] = [
            {"status": str(h.status), "at": h.at.isoformat(), "reason": h.reason, "message": h.message}
            for h in store.history(name)
        ]
    finally:
        store.close()
    if output_format == "json":
        typer.echo(json.dumps(row, indent=2))
        return
    for key in (
        "name",
        "op",
        "kind",
        "status",
        "cause",
        "cause_id",
        "commit",
        "parent",
        "backend",
        "created_at",
        "started_at",
        "finished_at",
    ):
        if row.get(key) is not None:
            typer.echo(f"{key + ':':<12} {row[key]}")
    typer.echo("history:")
    for h in row["history"]:
        typer.echo(f"  {h['at'][:19]}  {h['status']:<14} {h['reason'] or ''} {h['message'] or ''}".rstrip())


def _request(settings: Settings, path: str, method: str = "GET") -> urllib.request.Request:
    """A request to the daemon's API with the config's bearer token, if one is set (server.token_*)."""
    import urllib.request  # here, not above: the commands that only read the database never call the daemon

    from reconciler.secrets import SecretMissing, read_secret

    host = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::") else settings.server.host
    if ":" in host:
        host = f"[{host}]"
    headers = {}
    try:
        token = read_secret(settings.server.token_file, settings.server.token_env, "server token")
    except SecretMissing as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return urllib.request.Request(f"http://{host}:{settings.server.port}{path}", method=method, headers=headers)


def _follow(settings: Settings, name: str, tail: int | None) -> bool:
    """Print the run's log as the daemon streams it (server-sent events) until the run ends;
    False when no daemon answers."""
    import gc
    import urllib.error
    import urllib.request

    # `cli.main` runs the read commands with the cyclic collector off, which suits a command of
    # a second; a follow may last for hours.
    gc.enable()

    path = f"/api/runs/{quote(name, safe='')}/logs?follow=true" + (f"&tail={tail}" if tail else "")
    try:
        response = urllib.request.urlopen(_request(settings, path), timeout=60)
    except urllib.error.HTTPError as e:
        typer.echo(f"error: the daemon refused: {e.read().decode(errors='replace')}", err=True)
        raise typer.Exit(1) from None
    except (urllib.error.URLError, OSError):
        return False
    with response:
        event, data = "", []
        for raw in response:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif not line:
                if event == "log":
                    sys.stdout.write("\n".join(data) + "\n")
                    sys.stdout.flush()
                elif event == "end":
                    return True
                event, data = "", []
    return True


def _api(settings: Settings, path: str, method: str = "GET") -> tuple[int, str] | None:
    """Call the daemon's API with the config's bearer token, if one is set (server.token_*)."""
    import urllib.error
    import urllib.request

    request = _request(settings, path, method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError):
        return None  # no daemon listening


@runs_app.command("logs")
def logs(
    name: str,
    config: ConfigOption = None,
    tail: Annotated[int | None, typer.Option()] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
) -> None:
    """The run's logs (from the daemon; for the local backend, from its log files if no daemon runs)."""
    settings = settings_or_exit(config)
    if follow:
        if _follow(settings, name, tail):
            return
        typer.echo("error: --follow needs the daemon, and none is answering", err=True)
        raise typer.Exit(1)
    answer = _api(settings, f"/api/runs/{quote(name, safe='')}/logs" + (f"?tail={tail}" if tail else ""))
    if answer is not None and answer[0] == 200:
        typer.echo(answer[1], nl=False)
        return
    if answer is not None and answer[0] in (400, 401, 403):
        typer.echo(f"error: the daemon refused: {answer[1]}", err=True)
        raise typer.Exit(1)
    if settings.backend == "local":
        from reconciler.backends.local.backend import STATE_SUBDIR
        from reconciler.backends.local.store import read_chunks, read_tail, safe_name

        root = Path(settings.data_dir) / STATE_SUBDIR
        # local-runs/<daemon instance>/<run>/, or local-runs/<run>/ for runs of older releases
        found = [*root.glob(f"*/{name}/stdout.log"), root / name / "stdout.log"] if safe_name(name) else []
        log_file = next((f for f in found if f.is_file()), root / "-")
        if log_file.is_file():
            if tail:
                typer.echo(read_tail(log_file, tail), nl=False)
            else:
                for block in read_chunks(log_file):
                    sys.stdout.buffer.write(block)
                sys.stdout.buffer.flush()
            return
    typer.echo(f"error: no logs for {name}" + ("" if answer else " (and no daemon is answering)"), err=True)
    raise typer.Exit(1)


@runs_app.command("stop")
def stop(name: str, config: ConfigOption = None) -> None:
    """Ask the daemon to stop a run (stopping -> stopped)."""
    settings = settings_or_exit(config)
    answer = _api(settings, f"/api/runs/{quote(name, safe='')}/stop", method="POST")
    if answer is None:
        typer.echo(
            f"error: no daemon answers at {settings.server.host}:{settings.server.port}; "
            "runs are stopped by the daemon that owns them",
            err=True,
        )
        raise typer.Exit(1)
    if answer[0] != 202:
        typer.echo(f"error: {answer[1]}", err=True)
        raise typer.Exit(1)
    typer.echo(f"stopping {name}")


@runs_app.command("retry")
def retry(name: str, config: ConfigOption = None) -> None:
    """Run a finished run again (a new run of the same operation and spec, cause `retry`)."""
    settings = settings_or_exit(config)
    answer = _api(settings, f"/api/runs/{name}/retry", method="POST")
    if answer is None:
        typer.echo(f"error: no daemon answers at {settings.server.host}:{settings.server.port}", err=True)
        raise typer.Exit(1)
    if answer[0] != 202:
        typer.echo(f"error: {answer[1]}", err=True)
        raise typer.Exit(1)
    typer.echo(f"retrying {name} as {json.loads(answer[1])['retry']}")


@ops_app.command("list")
def list_ops(
    config: ConfigOption = None,
    output_format: FormatOption = "text",
    repo: Annotated[str | None, typer.Option()] = None,
    removed: Annotated[bool, typer.Option("--removed", help="Also list operations removed from Git.")] = False,
) -> None:
    """Operations Git declares, with their mode, last good spec and latest run."""
    _check_format(output_format)
    store = _store(settings_or_exit(config))
    try:
        latest = store.latest_status_per_op(repo)
        rows = []
        for op in store.operations(repo, include_removed=removed):
            last = latest.get(op.op_key)
            rows.append(
                {
                    "op": op.op_key,
                    "mode": op.mode,
                    "spec_hash": op.last_good_spec_hash,
                    "commit": op.last_good_commit_sha,
                    "invalid_since": op.invalid_since.isoformat() if op.invalid_since else None,
                    "removed_at": op.removed_at.isoformat() if op.removed_at else None,
                    "latest_run": last.run_name if last else None,
                    "latest_status": str(last.status) if last else None,
                }
            )
    finally:
        store.close()
    if emit_rows(rows, output_format, "no operations"):
        return
    typer.echo(f"{'OP':<56} {'MODE':<13} {'LATEST STATUS':<14} LATEST RUN")
    for r in rows:
        flag = " (removed)" if r["removed_at"] else (" (invalid)" if r["invalid_since"] else "")
        typer.echo(f"{r['op'] + flag:<56} {r['mode']:<13} {r['latest_status'] or '-':<14} {r['latest_run'] or '-'}")
