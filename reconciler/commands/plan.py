"""`reconciler plan`: what a sync would do for a repo at a ref, without doing it.

Reads the files with the `git` CLI through a small private adapter (`_read_repo`): the source
adapter (`reconciler.source`) replaces it once both are merged. Without a tracking DB the plan is
made against an empty tracked state: everything valid shows as created or registered.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from reconciler.compile import CompileOptions, compile_repo
from reconciler.plan import PlanOptions, TrackedState, to_json, to_text
from reconciler.plan import plan as make_plan

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2
SUFFIXES = (".yaml", ".yml", ".json")
GIT_TIMEOUT = 120.0  # seconds, for any one git call (safety rule 4)


class RepoError(Exception):
    """The repo or the ref cannot be read."""


@dataclass(frozen=True)
class Snapshot:
    commit: str
    files: dict[str, bytes]


def _watched(path: str) -> bool:
    parts = path.split("/")
    return path.endswith(SUFFIXES) and not any(p.startswith(".") for p in parts)


def _git(args: list[str], *, cwd: str | None = None, data: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=data,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RepoError(f"git {args[0]}: {e}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise RepoError(f"git {args[0]}: {message[-1] if message else 'failed'}")
    return done.stdout


def _read_git(git_dir: str, ref: str) -> Snapshot:
    commit = _git(["--git-dir", git_dir, "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}"])
    sha = commit.decode().strip()
    listing = _git(["--git-dir", git_dir, "ls-tree", "-r", "-z", "--full-tree", sha])
    blobs: list[tuple[str, str]] = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, name = entry.partition(b"\t")
        mode, kind, blob = meta.decode().split(" ")
        path = name.decode("utf-8", errors="surrogateescape")
        if kind == "blob" and mode != "120000" and _watched(path):
            blobs.append((path, blob))
    files: dict[str, bytes] = {}
    if blobs:
        out = _git(["--git-dir", git_dir, "cat-file", "--batch"], data="".join(f"{b}\n" for _, b in blobs).encode())
        offset = 0
        for path, _blob in blobs:
            header_end = out.index(b"\n", offset)
            size = int(out[offset:header_end].split(b" ")[2])
            start = header_end + 1
            files[path] = out[start : start + size]
            offset = start + size + 1
    return Snapshot(sha, files)


def _read_dir(root: Path) -> Snapshot:
    files: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            full = Path(folder, name)
            rel = full.relative_to(root).as_posix()
            if _watched(rel) and full.is_file():
                files[rel] = full.read_bytes()
    return Snapshot("worktree", files)


def _is_url(repo: str) -> bool:
    return "://" in repo or (repo.startswith("git@") and ":" in repo)


@contextmanager
def _read_repo(repo: str, ref: str | None) -> Iterator[Snapshot]:
    if _is_url(repo):
        with tempfile.TemporaryDirectory(prefix="reconciler-plan-") as tmp:
            target = os.path.join(tmp, "repo.git")
            try:
                branch = ["--branch", ref] if ref else []
                _git(["clone", "--quiet", "--bare", "--depth", "1", *branch, "--", repo, target])
            except RepoError:
                if not ref:
                    raise
                # A commit sha cannot be cloned shallowly by name: fetch the history instead.
                _git(["clone", "--quiet", "--bare", "--", repo, target])
            yield _read_git(target, ref or "HEAD")
        return
    path = Path(repo)
    if not path.is_dir():
        raise RepoError(f"no such directory: {repo}")
    try:
        git_dir = _git(["-C", str(path), "rev-parse", "--absolute-git-dir"]).decode().strip()
    except RepoError:
        if ref:
            raise RepoError(f"{repo} is not a git repository, so --ref {ref} cannot be read") from None
        yield _read_dir(path)
        return
    yield _read_git(git_dir, ref or "HEAD")


def _repo_name(repo: str) -> str:
    name = repo.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = name.removesuffix(".git")
    return name or "repo"


def _tracked(db: str, repo: str) -> TrackedState:
    """What the daemon's database says already runs for `repo` (name as in the daemon's config)."""
    from reconciler.snapshot import tracked_state
    from reconciler.tracking import DatabaseNotReady, Store, check_ready

    try:
        check_ready(db)
    except DatabaseNotReady as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    from reconciler.orchestration import Orchestrator

    store = Store.open(db)
    try:
        return tracked_state(store, repo, Orchestrator(store, backend_name="plan").tracked)
    finally:
        store.close()


def plan(
    repo: Annotated[str, typer.Option("--repo", help="Local path (git or plain directory) or git URL.")],
    ref: Annotated[str | None, typer.Option(help="Branch, tag or commit (default: HEAD).")] = None,
    db: Annotated[str | None, typer.Option(help="Tracking DB URL, to plan against what already runs.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
    name: Annotated[str | None, typer.Option(help="Repo name in operation keys (default: from the path).")] = None,
    hub_dir: Annotated[str | None, typer.Option(help="Hub components directory inside the repo.")] = None,
    now: Annotated[str | None, typer.Option(help="Plan as of this ISO time (default: now), for schedules.")] = None,
    tz: Annotated[str, typer.Option(help="Time zone of cron schedules.")] = "UTC",
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Also list unchanged operations.")] = False,
) -> None:
    """Print what a sync would do: + create, ~ update, - delete, ! invalid, schedules; exit 1 if files are invalid."""
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
    try:
        with _read_repo(repo, ref) as snapshot:
            options = CompileOptions(repo=name or _repo_name(repo), hub_dir=hub_dir)
            result = compile_repo(snapshot.files, options, snapshot.commit)
    except RepoError as e:
        typer.echo(f"error: cannot read {repo}: {e}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    tracked = _tracked(db, options.repo) if db is not None else TrackedState()
    actions = make_plan(result.desired, None, tracked, moment, PlanOptions(tz=tz))
    if output_format == "json":
        typer.echo(json.dumps(to_json(snapshot.commit, actions), indent=2, default=str))
    else:
        typer.echo(f"commit {snapshot.commit}")
        typer.echo(to_text(actions, verbose=verbose))
    raise typer.Exit(EXIT_INVALID if result.desired.invalid else EXIT_OK)
