"""The one commit loader: a repo's config, its watched files and the operations they declare at a commit.

The daemon's reconcile, its pull-request checks and `reconciler plan` all load a commit here, so
they see the same thing: the `.polyaxon-reconciler.yaml` of that commit (its `watch`, `ignore`,
`hub_dir` and `previews`), the watched files plus the hub directory, and the compiled
`DesiredState`. A bad repo config is a value (`BadRepoConfig`), never an exception: nothing of
that commit is applied, and nothing is stopped.

Compiling is incremental when the previous load is given: files unchanged since the commit that
load was made at are reused. The diff is taken against that commit, not against the last one
recorded: a commit held back by a bad repo config is compiled into the next good one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reconciler import repo_config as rc
from reconciler.compile import CompileOptions, CompileResult, compile_repo
from reconciler.errors import Located
from reconciler.model import DesiredState
from reconciler.source import ChangeSet, FilesAt, SkippedFile


class CommitReader(Protocol):
    """What the loader reads a commit through: `source.GitReader`/`GitSource`, or a directory."""

    def files_at(self, sha: str, patterns: Sequence[str], *, ignore: Sequence[str] = ()) -> FilesAt: ...

    def read_file(self, sha: str, path: str) -> bytes | None: ...

    def repo_config(self, sha: str) -> rc.RepoFileConfig | list[Located]: ...

    def changed_files(self, old_sha: str | None, new_sha: str) -> ChangeSet: ...


@dataclass(frozen=True)
class LoadedCommit:
    sha: str
    config: rc.RepoFileConfig
    # Not the files' bytes: the daemon keeps the last commit between reconciles, and what the
    # next compile reuses is in `compiled` (each file's digest and result).
    compiled: CompileResult
    skipped: tuple[SkippedFile, ...] = field(default=())

    @property
    def desired(self) -> DesiredState:
        return self.compiled.desired

    @property
    def errors(self) -> list[Located]:
        return [e for f in self.desired.invalid.values() for e in f.errors]


@dataclass(frozen=True)
class BadRepoConfig:
    """The commit's `.polyaxon-reconciler.yaml` does not parse: nothing of the commit applies."""

    sha: str
    errors: list[Located]


def compile_options(repo: str, config: rc.RepoFileConfig) -> CompileOptions:
    return CompileOptions(repo=repo, hub_dir=config.hub_dir, previews=tuple(config.previews))


def watched_patterns(config: rc.RepoFileConfig) -> list[str]:
    """What is read at a commit: the watched files, and the hub directory their refs may name."""
    return list(config.watch) + ([f"{config.hub_dir.rstrip('/')}/**"] if config.hub_dir else [])


def load_commit(
    reader: CommitReader,
    repo: str,
    sha: str,
    *,
    previous: LoadedCommit | None = None,
    config: rc.RepoFileConfig | None = None,
    namespaces: Collection[str] | None = None,
) -> LoadedCommit | BadRepoConfig:
    """Read and compile `sha` of `repo` (the name in op keys). `config` replaces the commit's own
    repo config (`reconciler plan --hub-dir`); the daemon never passes one. `namespaces`: those
    the repo config may name (None: any); naming another makes the repo config bad."""
    if config is None:
        found = rc.parse(reader.read_file(sha, rc.FILENAME), namespaces=namespaces)
        if isinstance(found, list):
            return BadRepoConfig(sha, found)
        config = found
    if previous is not None and previous.sha == sha and previous.config == config:
        return previous  # the same commit read the same way: nothing to read or compile again
    files = reader.files_at(sha, watched_patterns(config), ignore=config.ignore)
    options = compile_options(repo, config)
    reuse = previous if previous is not None and previous.compiled.options == options else None
    changed: set[str] | None = None
    if reuse is not None:
        changed = set() if reuse.sha == sha else set(reader.changed_files(reuse.sha, sha).paths)
    compiled = compile_repo(files.files, options, sha, previous=reuse.compiled if reuse else None, changed=changed)
    return LoadedCommit(sha, config, compiled, files.skipped)


__all__ = ["BadRepoConfig", "CommitReader", "LoadedCommit", "compile_options", "load_commit", "watched_patterns"]
