"""The git adapter: one bare local copy per repo, fetched on demand, read without checkouts.

Why a bare repository and no work tree: every read is "this file at that commit", served from the
object database, so there is no checkout to get dirty, half-written or out of step with the
commit being compiled. Only `fetch` (and deepening a shallow copy) talks to the network; those
calls have a timeout and retry transient failures with capped exponential backoff.

One `GitSource` belongs to one repo and is driven by that repo's queue; it is not thread-safe.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import git

from reconciler import globs
from reconciler import repo_config as rc
from reconciler.errors import Located
from reconciler.logs import register_secret
from reconciler.secrets import file_mode_problem
from reconciler.source import auth
from reconciler.source.advance import Advance, Relation, decide
from reconciler.source.backoff import Backoff, RetriesExhausted, retry
from reconciler.source.errors import (
    PermanentSourceError,
    SourceError,
    TransientSourceError,
    is_permanent,
    summarize,
)
from reconciler.source.types import ChangeSet, FilesAt, Revision, SkippedFile

log = logging.getLogger("reconciler.source")

DEFAULT_MAX_FILE_BYTES = 1_000_000
_STAYS = "the repo stays at its last applied commit"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# A full commit id (SHA-1 or SHA-256): what a forge reports, never an option or a rev expression.
_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# Protocols git may use for our remotes; excludes ext:: and other helpers that run commands.
_ALLOWED_PROTOCOLS = "file:git:ssh:http:https"
_REGULAR_MODES = ("100644", "100755")


def full_ref(ref: str) -> str:
    """`main` means the branch; anything under `refs/` (tags, PR heads) is taken as written."""
    return ref if ref.startswith("refs/") else f"refs/heads/{ref}"


def ref_problem(ref: str) -> str | None:
    bad = (
        not ref
        or ref.startswith(("-", "/"))
        or ref.endswith(("/", ".lock", "."))
        or ".." in ref
        or "//" in ref
        or "@{" in ref
        or any(ch in ref for ch in " ~^:?*[\\\t\n")
    )
    return f"{ref!r} is not a valid git ref name" if bad else None


_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    @functools.wraps(method)
    def wrapper(self: GitReader, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return cast(_F, wrapper)


class GitReader:
    """Read commits of a git directory: files at a commit, one file, the repo config, changes.

    Nothing here writes to the repository or reaches the network, so it can read a user's own
    repository in place (`reconciler plan --repo PATH`); `GitSource` adds fetching a remote.
    """

    def __init__(self, name: str, path: Path, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.name = name
        self.path = Path(path)
        self.max_file_bytes = max_file_bytes
        self._repo: git.Repo | None = None
        # gitpython's object readers are not thread-safe: every public call holds this lock, so
        # a reconcile, a pull-request check and a hook's component lookup may share one copy.
        self.lock = threading.RLock()

    @_locked
    def close(self) -> None:
        """Stop the git helper processes gitpython keeps open for object reads."""
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def _open(self) -> git.Repo:
        if self._repo is None:
            try:
                self._repo = git.Repo(self.path)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError, OSError) as err:
                raise PermanentSourceError(
                    self.name, f"{self.path} is not a git repository ({type(err).__name__})", "nothing was read"
                ) from None
        return self._repo

    def _scrub(self, text: str, token: str | None = None) -> str:
        return auth.redact(text)

    @_locked
    def resolve(self, revision: str) -> str:
        """The commit a revision (sha, branch, tag, `main~1`, `HEAD`) names in this repository."""
        return self._resolve(revision)

    def _git(self, *args: str, timeout: float | None = None, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        result = self._open().git.execute(
            ["git", *args],
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=timeout,
            env=env,
        )
        status, out, err = result
        return status, out, err

    def _local(self, *args: str) -> str:
        """A local, read-only git command that must succeed."""
        status, out, err = self._git(*args)
        if status != 0:
            raise PermanentSourceError(
                self.name, f"git {args[0]} failed: {self._scrub(summarize(err))}", f"not retried; {_STAYS}"
            )
        return out

    def _resolve(self, sha: str) -> str:
        status, out, _ = self._git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{sha}^{{commit}}")
        if status != 0:
            raise PermanentSourceError(
                self.name, f"commit {sha!r} is not in the local copy", "fetch first; nothing was read"
            )
        return out.strip()

    def _has_commit(self, sha: str) -> bool:
        status, _, _ = self._git("cat-file", "-e", f"{sha}^{{commit}}")
        return status == 0

    def _tree(self, sha: str) -> list[tuple[str, str, str, int | None, str]]:
        """(mode, type, object, size, path) of every entry at `sha`, recursively."""
        out = self._local("ls-tree", "-r", "-l", "-z", "--full-tree", self._resolve(sha))
        entries = []
        for entry in out.split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            mode, kind, obj, size = meta.split()
            entries.append((mode, kind, obj, None if size == "-" else int(size), path))
        return entries

    @_locked
    def files_at(
        self, sha: str, patterns: Sequence[str], *, ignore: Sequence[str] = (), max_bytes: int | None = None
    ) -> FilesAt:
        """Contents of the files at `sha` matching any of `patterns` and none of `ignore`.

        Files over `max_bytes`, symbolic links and submodules that match are left out and
        listed in `skipped`, so the caller can report them rather than silently lose them.
        """
        limit = self.max_file_bytes if max_bytes is None else max_bytes
        odb = self._open().odb
        files: dict[str, bytes] = {}
        skipped: list[SkippedFile] = []
        for mode, kind, obj, size, path in self._tree(sha):
            if not globs.match_any(patterns, path) or globs.match_any(ignore, path):
                continue
            if kind != "blob":
                skipped.append(SkippedFile(path, 0, "submodule"))
            elif mode not in _REGULAR_MODES:
                skipped.append(SkippedFile(path, size or 0, "symbolic link"))
            elif size is not None and size > limit:
                skipped.append(SkippedFile(path, size, f"larger than {limit} bytes"))
            else:
                files[path] = odb.stream(bytes.fromhex(obj)).read()
        return FilesAt(files, tuple(skipped))

    @_locked
    def read_file(self, sha: str, path: str) -> bytes | None:
        """The regular file at `path` in `sha`, or None when there is none."""
        commit = self._open().commit(self._resolve(sha))
        try:
            obj = commit.tree.join(path)
        except KeyError:
            return None
        if obj.type != "blob" or f"{obj.mode:o}" not in _REGULAR_MODES:
            return None
        return cast(bytes, obj.data_stream.read())

    @_locked
    def repo_config(self, sha: str) -> rc.RepoFileConfig | list[Located]:
        """The per-repo config at `sha` (defaults when the file is absent)."""
        return rc.parse(self.read_file(sha, rc.FILENAME))

    @_locked
    def changed_files(self, old_sha: str | None, new_sha: str) -> ChangeSet:
        """Paths added, modified and deleted from `old_sha` to `new_sha` (None: everything is added).

        Renames are not detected on purpose: a renamed file is a deleted and an added operation.
        """
        if old_sha is None:
            return ChangeSet(added=frozenset(path for *_, path in self._tree(new_sha)))
        out = self._local(
            "diff-tree",
            "-r",
            "-z",
            "--no-renames",
            "--name-status",
            self._resolve(old_sha),
            self._resolve(new_sha),
        )
        fields = [f for f in out.split("\0") if f]
        added: set[str] = set()
        modified: set[str] = set()
        deleted: set[str] = set()
        for status, path in zip(fields[::2], fields[1::2], strict=True):
            {"A": added, "D": deleted}.get(status[0], modified).add(path)
        return ChangeSet(frozenset(added), frozenset(modified), frozenset(deleted))


class GitSource(GitReader):
    """Fetch one ref of one remote into `cache_dir/<name>.git` and read commits from it."""

    def __init__(
        self,
        name: str,
        url: str,
        ref: str,
        cache_dir: Path,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        token_env: str | None = None,
        token_username: str = "x-access-token",
        timeout_s: float = 120.0,
        ssh_command: str | None = None,
        depth: int | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        problems = [
            None if _NAME.match(name) and not name.endswith(".lock") else f"{name!r} is not a usable repo name",
            auth.url_problem(url),
            "the URL must not start with '-'" if url.startswith("-") else None,
            ref_problem(full_ref(ref)),
            "give at most one of token, token_file, token_env"
            if sum(x is not None for x in (token, token_file, token_env)) > 1
            else None,
            "depth must be at least 1" if depth is not None and depth < 1 else None,
            "timeout_s must be positive" if timeout_s <= 0 else None,
        ]
        found = [p for p in problems if p]
        if found:
            # The URL may hold a username; redact before it reaches any message.
            raise ValueError(auth.redact(f"repo {name!r}: " + "; ".join(found)))
        super().__init__(name, Path(cache_dir) / f"{name}.git", max_file_bytes=max_file_bytes)
        self.url = url
        self.ref = full_ref(ref)
        self.local_ref = "refs/reconciler/" + self.ref.removeprefix("refs/")
        self.timeout_s = timeout_s
        self.depth = depth
        self.backoff = backoff or Backoff()
        self._token = token
        self._token_file = token_file
        self._token_env = token_env
        self._token_username = token_username
        self._ssh_command = ssh_command
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"GitSource({self.name!r}, {auth.redact(self.url)!r}, {self.ref!r})"

    # -- plumbing ---------------------------------------------------------------------------

    def _open(self) -> git.Repo:
        if self._repo is None:
            try:
                if not self.path.exists():
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._repo = git.Repo.init(self.path, bare=True)
                else:
                    self._repo = git.Repo(self.path)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError, OSError) as err:
                raise PermanentSourceError(
                    self.name,
                    f"local copy {self.path} is unusable ({type(err).__name__})",
                    f"not retried; remove {self.path} to let it be fetched again; {_STAYS}",
                ) from None
        return self._repo

    def _read_token(self) -> str | None:
        if self._token is not None:
            return self._token
        if self._token_file is not None:
            problem = file_mode_problem(self._token_file)
            if problem:
                raise PermanentSourceError(
                    self.name,
                    f"token file refused: {problem}",
                    f"not retried; it is read again at the next poll; {_STAYS}",
                )
            try:
                token = self._token_file.read_text(encoding="utf-8").strip()
            except OSError as err:
                raise PermanentSourceError(
                    self.name,
                    f"cannot read token file {self._token_file}: {err.strerror}",
                    f"not retried; fix the file, it is read again at the next poll; {_STAYS}",
                ) from None
            register_secret(token)
            return token
        if self._token_env is not None:
            value = os.environ.get(self._token_env)
            if not value:
                raise PermanentSourceError(
                    self.name,
                    f"environment variable {self._token_env} is not set",
                    f"not retried; set it and restart the daemon; {_STAYS}",
                )
            register_secret(value.strip())
            return value.strip()
        return None

    def _scrub(self, text: str, token: str | None = None) -> str:
        return auth.redact(text, auth.secrets_for(token, self._token_username))

    def _env(self, token: str | None) -> dict[str, str]:
        connect = max(1, min(30, int(self.timeout_s)))
        return {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": _ALLOWED_PROTOCOLS,
            "GIT_SSH_COMMAND": self._ssh_command or f"ssh -o BatchMode=yes -o ConnectTimeout={connect}",
            **auth.auth_env(self.url, token, self._token_username),
        }

    def _remote_fetch(self, *extra: str) -> None:
        """`git fetch` of our ref, retried with backoff; raises a SourceError when it gives up."""
        token = self._read_token()
        env = self._env(token)
        # A transfer slower than 1 KB/s for the whole timeout is as good as hung; git notices
        # that itself, before the hard kill.
        low_speed_time = str(max(1, int(self.timeout_s)))
        args = [
            "-c", "http.lowSpeedLimit=1000",
            "-c", f"http.lowSpeedTime={low_speed_time}",
            "fetch", "--no-tags", "--no-write-fetch-head", *extra,
            "--", self.url, f"+{self.ref}:{self.local_ref}",
        ]  # fmt: skip
        shown_url = self._scrub(self.url, token)

        def once() -> None:
            status, _, err = self._git(*args, timeout=self.timeout_s, env=env)
            if status == 0:
                return
            what = self._scrub(summarize(err), token)
            if is_permanent(err):
                raise PermanentSourceError(
                    self.name,
                    f"fetch of {self.ref} from {shown_url} failed: {what}",
                    f"not retried; fix the credentials, URL or ref (tried again at the next poll); {_STAYS}",
                )
            raise TransientSourceError(self.name, f"fetch of {self.ref} from {shown_url} failed: {what}", "retrying")

        def on_retry(err: Exception, attempt: int, delay: float) -> None:
            msg = err.message if isinstance(err, SourceError) else str(err)
            log.warning("repo %s: %s; try %d of %d in %.1fs", self.name, msg, attempt, self.backoff.attempts, delay)

        try:
            retry(
                once,
                backoff=self.backoff,
                retryable=lambda e: isinstance(e, TransientSourceError),
                sleep=self._sleep,
                on_retry=on_retry,
            )
        except RetriesExhausted as ex:
            last = cast(TransientSourceError, ex.last)
            raise TransientSourceError(
                self.name,
                f"{last.message} ({ex.attempts} tries over {ex.waited_s:.1f}s of backoff)",
                f"will try again at the next poll; {_STAYS}",
            ) from None

    def _is_shallow(self) -> bool:
        return (self.path / "shallow").exists()

    def _is_ancestor(self, older: str, newer: str) -> bool:
        status, _, err = self._git("merge-base", "--is-ancestor", older, newer)
        if status > 1:
            raise PermanentSourceError(
                self.name, f"ancestry check failed: {self._scrub(summarize(err))}", f"not retried; {_STAYS}"
            )
        return status == 0

    # -- API --------------------------------------------------------------------------------

    @_locked
    def fetch(self) -> Revision:
        """Bring the tracked ref up to date and return the commit it points to."""
        extra: list[str] = []
        if self.depth is not None and not self._has_ref():
            # Only the first fetch is shallow. Later plain fetches extend the history we already
            # have, so the last applied commit stays reachable for the ancestry check.
            extra = ["--depth", str(self.depth)]
        self._remote_fetch(*extra)
        sha = self._resolve(self.local_ref)
        commit = self._open().commit(sha)
        revision = Revision(sha, datetime.fromtimestamp(commit.committed_date, tz=UTC), self.ref)
        log.info("repo %s: fetched %s at %s", self.name, self.ref, sha[:12])
        return revision

    def _has_ref(self) -> bool:
        status, _, _ = self._git("rev-parse", "--verify", "--quiet", self.local_ref)
        return status == 0

    @_locked
    def relation(self, previous: str | None, fetched: str) -> Relation:
        """How `fetched` relates to `previous`, deepening a shallow copy when that could matter."""
        if previous is None:
            return Relation.FIRST
        if previous == fetched:
            return Relation.SAME
        found = self._relate(previous, fetched)
        if found in (Relation.UNKNOWN, Relation.DIVERGED) and self._is_shallow():
            # The answer may come from cut-off history rather than a rewrite: fetch all of it
            # once and ask again. Rare: later fetches are not shallow (see `fetch`).
            log.info("repo %s: deepening the shallow copy to check ancestry", self.name)
            self._remote_fetch("--unshallow")
            found = self._relate(previous, fetched)
        return found

    def _relate(self, previous: str, fetched: str) -> Relation:
        if not self._has_commit(previous):
            return Relation.UNKNOWN
        if self._is_ancestor(previous, fetched):
            return Relation.AHEAD
        if self._is_ancestor(fetched, previous):
            return Relation.BEHIND
        return Relation.DIVERGED

    @_locked
    def force_push_policy(self, applied: str | None) -> rc.ForcePushPolicy:
        """The policy written at the last applied commit: new history cannot allow itself in."""
        if applied is None or not self._has_commit(applied):
            return "reject"
        parsed = rc.parse(self.read_file(applied, rc.FILENAME))
        return "reject" if isinstance(parsed, list) else parsed.force_push

    @_locked
    def base_config(self, candidate: str | None, applied: str | None) -> rc.RepoFileConfig:
        """The repo config that decides what a pull request may run (design.md §5 rule 8).

        Read at `candidate` (the pull request's base commit, as the forge reports it) only when
        that commit is on the tracked branch as fetched; otherwise at `applied` (the branch's
        last applied commit). No usable commit, or a config that does not parse, gives the
        defaults, which let nothing run. Never a commit the pull request brought.
        """
        for sha in (candidate, applied):
            if not sha or not _OBJECT_ID.fullmatch(sha) or not self._has_commit(sha) or not self._has_ref():
                continue
            if self._is_ancestor(sha, self.local_ref):
                parsed = rc.parse(self.read_file(sha, rc.FILENAME))
                return rc.RepoFileConfig() if isinstance(parsed, list) else parsed
        return rc.RepoFileConfig()

    @_locked
    def advance(
        self, last_applied_sha: str | None, fetched: Revision, *, policy: rc.ForcePushPolicy | None = None
    ) -> Advance:
        """Decide whether `fetched` may replace `last_applied_sha` (never move backwards)."""
        relation = self.relation(last_applied_sha, fetched.sha)
        if policy is None:
            policy = self.force_push_policy(last_applied_sha)
        result = decide(last_applied_sha, fetched.sha, relation, policy)
        level = logging.INFO if result.relation in (Relation.FIRST, Relation.SAME, Relation.AHEAD) else logging.WARNING
        log.log(level, "repo %s: %s %s: %s", self.name, self.ref, result.verdict.value, result.reason)
        return result


def clone_for_reading(name: str, url: str, dest: Path, *, timeout_s: float = 120.0) -> GitReader:
    """A bare clone of `url` (all branches and tags) into `dest`, for one-off reads (`reconciler
    plan --repo URL`): prompts off, only file/git/ssh/http(s), no credentials, bounded in time."""
    problem = auth.url_problem(url) or ("the URL must not start with '-'" if url.startswith("-") else None)
    if problem:
        raise PermanentSourceError(name, auth.redact(problem), "nothing was read")
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": _ALLOWED_PROTOCOLS,
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=30",
    }
    try:
        done = subprocess.run(
            ["git", "clone", "--quiet", "--bare", "--no-hardlinks", "--", url, str(dest)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise TransientSourceError(name, f"clone of {auth.redact(url)} failed: {err}", "nothing was read") from None
    if done.returncode != 0:
        raise PermanentSourceError(
            name, f"clone of {auth.redact(url)} failed: {auth.redact(summarize(done.stderr))}", "nothing was read"
        )
    return GitReader(name, dest)
