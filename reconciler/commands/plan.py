"""`reconciler plan`: what a sync would do for a repo at a ref, without doing it.

Two ways to name the repo:
- `--config FILE --name REPO` (or `--name` with `./reconciler.yaml` or `$RECONCILER_CONFIG`): a
  configured repo, planned exactly as the daemon would: its URL, branch and credentials, the
  repo config at that commit, its tracking database and, where the cluster is reachable, what
  runs there.
- `--repo PATH_OR_URL`: any repository (or plain directory), with no daemon behind it; `--db`
  adds a tracking database to plan against.

Either way the commit is read by the daemon's own loader (`reconciler.loader.load_commit`), so
`.polyaxon-reconciler.yaml` is honoured. Nothing is written: no database is created, nothing is
started.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reconciler.plan import PlanOptions, TrackedState, to_json, to_text
from reconciler.plan import plan as make_plan

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.loader import BadRepoConfig, CommitReader
    from reconciler.model import ObservedObject

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2
DEFAULT_CONFIG = Path("reconciler.yaml")


class RepoError(Exception):
    """The repo or the ref cannot be read."""


def _is_url(repo: str) -> bool:
    return "://" in repo or (repo.startswith("git@") and ":" in repo)


def _repo_name(repo: str) -> str:
    name = repo.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = name.removesuffix(".git")
    return name or "repo"


@contextmanager
def open_repo(repo: str, ref: str | None, name: str) -> Iterator[tuple[CommitReader, str]]:
    """A reader of `repo` (a git URL, a git repository or a plain directory) and the commit `ref`
    names in it (default: HEAD; a plain directory has the one commit `worktree`)."""
    from reconciler.source import SourceError
    from reconciler.source.directory import DirectoryReader
    from reconciler.source.git import GitReader, clone_for_reading

    try:
        if _is_url(repo):
            with tempfile.TemporaryDirectory(prefix="reconciler-plan-") as tmp:
                reader = clone_for_reading(name, repo, Path(tmp) / "repo.git")
                try:
                    yield reader, reader.resolve(ref or "HEAD")
                finally:
                    reader.close()
            return
        path = Path(repo)
        if not path.is_dir():
            raise RepoError(f"no such directory: {repo}")
        git_dir = path / ".git" if (path / ".git").exists() else path
        if not (git_dir / "HEAD").is_file():
            if ref:
                raise RepoError(f"{repo} is not a git repository, so --ref {ref} cannot be read")
            directory = DirectoryReader(name, path)
            yield directory, directory.resolve("worktree")
            return
        reader = GitReader(name, git_dir)
        try:
            yield reader, reader.resolve(ref or "HEAD")
        finally:
            reader.close()
    except SourceError as e:
        raise RepoError(e.message) from None


@contextmanager
def open_configured(settings: Settings, name: str, ref: str | None) -> Iterator[tuple[CommitReader, str]]:
    """The configured repo `name`, fetched as the daemon fetches it (into a throw-away copy)."""
    from reconciler.source import SourceError
    from reconciler.wiring import git_sources

    repo = next((r for r in settings.repos if r.name == name), None)
    if repo is None:
        known = ", ".join(r.name for r in settings.repos) or "none"
        raise RepoError(f"no repo named {name!r} in the config (configured: {known})")
    with tempfile.TemporaryDirectory(prefix="reconciler-plan-") as tmp:
        scratch = settings.model_copy(update={"data_dir": Path(tmp)})
        source = git_sources(scratch)[name]
        try:
            revision = source.fetch()
            yield source, source.resolve(ref) if ref else revision.sha
        except SourceError as e:
            raise RepoError(e.message) from None
        finally:
            source.close()


def _tracked(db: str, repo: str) -> TrackedState | None:
    """What the tracking database says already runs for `repo`; None when there is no database yet."""
    from reconciler.orchestration.registry import tracked
    from reconciler.snapshot import tracked_state
    from reconciler.tracking import DatabaseNotReady, Store, check_ready

    try:
        check_ready(db)
    except DatabaseNotReady as e:
        if e.current is None and "no tracking database" in str(e):
            return None
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    store = Store.open(db)
    try:
        return tracked_state(store, repo, lambda name: tracked(store, name))
    finally:
        store.close()


def _observed(settings: Settings) -> list[ObservedObject] | None:
    """What runs in the cluster, when the daemon's backend is Kubernetes and reachable."""
    if settings.backend != "kubernetes":
        return None
    from reconciler.commands.daemon import build_backend

    try:
        backend = build_backend(settings)
        try:
            return backend.list_owned()
        finally:
            backend.close()
    except Exception as e:  # planning goes on without the cluster, and says so
        typer.echo(f"warning: the cluster is not reachable ({type(e).__name__}); planned without it", err=True)
        return None


def _settings_for(config: Path | None, name: str | None, repo: str | None) -> Settings | None:
    """The daemon settings `plan` should use, or None to plan `--repo` on its own."""
    from reconciler.commands.settings import settings_or_exit

    if repo is not None and config is None:
        return None
    if config is None:
        env = os.environ.get("RECONCILER_CONFIG")
        config = DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else (Path(env) if env else None)
    if config is None:
        typer.echo("error: give --repo PATH_OR_URL, or --name REPO with --config FILE", err=True)
        raise typer.Exit(EXIT_UNREADABLE)
    if repo is None and name is None:
        typer.echo("error: --config plans a configured repo: give --name REPO", err=True)
        raise typer.Exit(EXIT_UNREADABLE)
    return settings_or_exit(config)


def plan(
    repo: Annotated[str | None, typer.Option("--repo", help="Local path (git or plain directory) or git URL.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Daemon settings; with --name, plan that repo.")
    ] = None,
    ref: Annotated[str | None, typer.Option(help="Branch, tag or commit (default: the tracked head).")] = None,
    db: Annotated[str | None, typer.Option(help="Tracking DB URL, to plan against what already runs.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
    name: Annotated[str | None, typer.Option(help="Repo name (configured repo, or name in operation keys).")] = None,
    hub_dir: Annotated[str | None, typer.Option(help="Hub components directory (overrides the repo config).")] = None,
    now: Annotated[str | None, typer.Option(help="Plan as of this ISO time (default: now), for schedules.")] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone of cron schedules (overrides the repo config).")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Also list unchanged operations.")] = False,
) -> None:
    """Print what a sync would do: + create, ~ update, - delete, ! invalid, schedules; exit 1 if files are invalid."""
    from reconciler.loader import BadRepoConfig, load_commit

    if output_format not in ("text", "json"):
        typer.echo(f"error: --format must be text or json, got {output_format!r}", err=True)
        raise typer.Exit(EXIT_UNREADABLE)
    try:
        moment = datetime.fromisoformat(now) if now else datetime.now(UTC)
    except ValueError:
        typer.echo(f"error: --now must be an ISO date and time, got {now!r}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    settings = _settings_for(config, name, repo)
    repo_name = name or (_repo_name(repo) if repo else "repo")
    database = db or (settings.database if settings is not None else None)
    try:
        opened = open_configured(settings, repo_name, ref) if settings is not None and repo is None else None
        with opened or open_repo(str(repo), ref, repo_name) as (reader, sha):
            namespaces = settings.run_namespaces if settings is not None else None
            loaded = load_commit(reader, repo_name, sha, namespaces=namespaces)
            if hub_dir is not None and not isinstance(loaded, BadRepoConfig):
                overridden = loaded.config.model_copy(update={"hub_dir": hub_dir})
                loaded = load_commit(reader, repo_name, sha, config=overridden)
    except RepoError as e:
        typer.echo(f"error: cannot read {repo or repo_name}: {e}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    if isinstance(loaded, BadRepoConfig):
        _print_bad_config(sha, loaded, output_format)
        raise typer.Exit(EXIT_INVALID)
    tracked = _tracked(database, repo_name) if database is not None else None
    if tracked is None and database is not None:
        typer.echo("note: no tracking database yet: planned as if nothing ran", err=True)
    observed = _observed(settings) if settings is not None and repo is None else None
    options = PlanOptions(
        namespace=loaded.config.namespace_or(settings.kubernetes.namespace if settings is not None else "default"),
        prune=loaded.config.prune.model_dump(),
        tz=tz or loaded.config.timezone,
        self_heal=loaded.config.self_heal,
    )
    actions = make_plan(loaded.desired, observed, tracked or TrackedState(), moment, options)
    if output_format == "json":
        typer.echo(json.dumps(to_json(sha, actions), indent=2, default=str))
    else:
        typer.echo(f"commit {sha}")
        typer.echo(to_text(actions, verbose=verbose))
    raise typer.Exit(EXIT_INVALID if loaded.desired.invalid else EXIT_OK)


def _print_bad_config(sha: str, bad: BadRepoConfig, output_format: str) -> None:
    errors = bad.errors
    if output_format == "json":
        rows = [{"path": e.path, "line": e.line, "column": e.column, "message": e.message} for e in errors]
        body = {"commit": sha, "actions": [], "errors": rows}
        typer.echo(json.dumps(body, indent=2, default=str))
        return
    typer.echo(f"commit {sha}")
    for error in errors:
        typer.echo(f"! invalid {error}")
    typer.echo("the repo config is invalid: nothing would be applied", file=sys.stdout)
