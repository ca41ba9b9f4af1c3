"""Real git repositories and a real git smart-HTTP server for tests.

The source adapter must be tested against what it meets in production: a remote reached over
``file://`` or over HTTP(S) with a token, whose history can be rewritten by a force-push and which
carries forge pull-request refs. Everything here drives the real ``git`` CLI; the HTTP side is
git's own ``git http-backend`` (CGI) behind a tiny threaded server, so the wire protocol, auth
challenges and pack negotiation are git's, not ours. The server adds what a test needs on top:
per-repository request records, an optional token, and injected failures (503s, hangs).
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from tests.infra.http_body import read_body

# Commits get a fake clock (one minute apart) so their dates are ordered and reproducible
# whatever the wall clock does; 2024-01-01T00:00:00Z.
_EPOCH = 1_704_067_200
_COMMIT_STEP = 60
# Upper bound of an injected hang, so a forgotten injection cannot stall a test run.
MAX_HANG_SECONDS = 60.0

PullRefStyle = Literal["github", "gitlab"]


def isolated_git_env(home: Path) -> dict[str, str]:
    """Environment for git commands that ignores the machine's and user's git configuration."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        # A wrong token must fail, not wait for someone to type a password.
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="",
        SSH_ASKPASS="",
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="author@example.test",
        GIT_COMMITTER_NAME="Test Committer",
        GIT_COMMITTER_EMAIL="committer@example.test",
        LC_ALL="C",
    )
    return env


class GitError(RuntimeError):
    """A git command exited non-zero; carries its stderr for the assertion message."""

    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


def run_git(
    args: list[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str],
    timeout: float = 60.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise GitError(args, proc.returncode, proc.stderr)
    return proc


class GitRepo:
    """A working repository whose ``origin`` is a bare repository beside it.

    Methods mirror what a person does to a repo of polyaxonfiles: write files and commit, branch,
    push, rewrite history and force-push, open a pull request (a ref on the remote).
    """

    def __init__(self, path: Path, remote: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.remote = remote
        self.env = dict(env)
        self._clock = itertools.count(_EPOCH, _COMMIT_STEP)

    @property
    def file_url(self) -> str:
        return self.remote.resolve().as_uri()

    def git(self, *args: str, timeout: float = 60.0) -> str:
        return run_git(list(args), cwd=self.path, env=self.env, timeout=timeout).stdout.strip()

    def _dated_env(self) -> dict[str, str]:
        stamp = f"@{next(self._clock)} +0000"
        return {**self.env, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}

    def write(self, files: Mapping[str, str | bytes | None]) -> None:
        """Write (or, for ``None``, delete) files relative to the work tree."""
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                target.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)

    def delete(self, *paths: str) -> None:
        run_git(["rm", "-q", "--", *paths], cwd=self.path, env=self.env)

    def rename(self, old: str, new: str) -> None:
        (self.path / new).parent.mkdir(parents=True, exist_ok=True)
        run_git(["mv", old, new], cwd=self.path, env=self.env)

    def commit(
        self,
        message: str,
        files: Mapping[str, str | bytes | None] | None = None,
        *,
        allow_empty: bool = False,
    ) -> str:
        """Stage every change in the work tree (after writing ``files``), commit, return the sha."""
        if files:
            self.write(files)
        run_git(["add", "-A"], cwd=self.path, env=self.env)
        args = ["commit", "-q", "-m", message]
        if allow_empty:
            args.append("--allow-empty")
        run_git(args, cwd=self.path, env=self._dated_env())
        return self.head()

    def amend(self, message: str | None = None, files: Mapping[str, str | bytes | None] | None = None) -> str:
        """Replace the last commit (new sha); push with ``force=True`` to rewrite the remote."""
        if files:
            self.write(files)
        run_git(["add", "-A"], cwd=self.path, env=self.env)
        args = ["commit", "-q", "--amend", "--allow-empty"]
        args += ["-m", message] if message is not None else ["--no-edit"]
        run_git(args, cwd=self.path, env=self._dated_env())
        return self.head()

    def reset_hard(self, rev: str) -> str:
        run_git(["reset", "-q", "--hard", rev], cwd=self.path, env=self.env)
        return self.head()

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", f"{rev}^{{commit}}")

    def current_branch(self) -> str:
        return self.git("symbolic-ref", "--short", "HEAD")

    def branch(self, name: str, start: str = "HEAD") -> None:
        run_git(["branch", name, start], cwd=self.path, env=self.env)

    def checkout(self, name: str, *, create: bool = False) -> None:
        run_git(["checkout", "-q", *(["-b"] if create else []), name], cwd=self.path, env=self.env)

    def push(self, *refspecs: str, force: bool = False, remote: str = "origin") -> None:
        """Push ``refspecs`` (default: the current branch) to the bare remote."""
        specs = list(refspecs) or [f"HEAD:refs/heads/{self.current_branch()}"]
        run_git(["push", "-q", *(["--force"] if force else []), remote, *specs], cwd=self.path, env=self.env)

    def rewrite_last_commit(
        self, message: str | None = None, files: Mapping[str, str | bytes | None] | None = None
    ) -> str:
        """Amend the last commit and force-push the branch: the remote's old head disappears."""
        sha = self.amend(message, files)
        self.push(force=True)
        return sha

    def open_pull_request(self, number: int, source: str | None = None, style: PullRefStyle = "github") -> str:
        """Publish ``source`` (default HEAD) as the forge's head ref of pull request ``number``.

        GitHub keeps it at ``refs/pull/<n>/head``, GitLab at ``refs/merge-requests/<n>/head``.
        Calling it again moves the ref, as a push to the PR branch does. Returns the ref name.
        """
        ref = pull_ref(number, style)
        sha = self.head(source or "HEAD")
        self.push(f"{sha}:{ref}", force=True)
        return ref

    def remote_refs(self) -> dict[str, str]:
        out = run_git(["for-each-ref", "--format=%(refname) %(objectname)"], cwd=self.remote, env=self.env)
        refs: dict[str, str] = {}
        for line in out.stdout.splitlines():
            name, _, sha = line.partition(" ")
            refs[name] = sha
        return refs


def pull_ref(number: int, style: PullRefStyle = "github") -> str:
    return f"refs/pull/{number}/head" if style == "github" else f"refs/merge-requests/{number}/head"


class GitRepoFactory:
    """Makes working repos with bare remotes under one directory (a test's ``tmp_path``)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = isolated_git_env(base / ".git-home")
        self._names: set[str] = set()

    def _unique(self, name: str) -> str:
        candidate, n = name, 1
        while candidate in self._names:
            n += 1
            candidate = f"{name}-{n}"
        self._names.add(candidate)
        return candidate

    def create(
        self,
        name: str = "repo",
        files: Mapping[str, str | bytes | None] | None = None,
        *,
        branch: str = "main",
    ) -> GitRepo:
        """A repo on ``branch``; with ``files``, a first commit holding them is pushed."""
        name = self._unique(name)
        remote = self.base / "remotes" / f"{name}.git"
        work = self.base / "work" / name
        remote.parent.mkdir(parents=True, exist_ok=True)
        work.parent.mkdir(parents=True, exist_ok=True)
        run_git(["init", "-q", "--bare", "-b", branch, str(remote)], cwd=None, env=self.env)
        run_git(["init", "-q", "-b", branch, str(work)], cwd=None, env=self.env)
        repo = GitRepo(work, remote, self.env)
        repo.git("remote", "add", "origin", str(remote))
        if files:
            repo.commit("initial commit", files)
            repo.push()
        return repo

    def clone(self, url: str, name: str = "clone", *, extra_args: tuple[str, ...] = ()) -> Path:
        """Clone ``url`` into a fresh directory, as a consumer of the remote would."""
        dest = self.base / "clones" / self._unique(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        run_git(["clone", "-q", *extra_args, url, str(dest)], cwd=None, env=self.env)
        return dest

    def git(self, cwd: Path | None, *args: str, timeout: float = 60.0, check: bool = True) -> str:
        """Run git with this factory's isolated environment (for clones made by ``clone``)."""
        return run_git(list(args), cwd=cwd, env=self.env, timeout=timeout, check=check).stdout.strip()

    def try_git(self, cwd: Path | None, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return run_git(list(args), cwd=cwd, env=self.env, timeout=timeout, check=False)


# ---------------------------------------------------------------------------------------------
# Smart HTTP


@dataclass(frozen=True)
class HttpRequestRecord:
    method: str
    path: str  # below the repository, e.g. "info/refs" or "git-upload-pack"
    query: str
    status: int  # 0 when the connection was dropped without an answer (hang)
    user: str | None
    injected: str | None  # "status" or "hang" when the answer was an injected failure

    @property
    def service(self) -> str | None:
        """``git-upload-pack`` (fetch), ``git-receive-pack`` (push) or None."""
        m = re.search(r"service=(git-[a-z-]+)", self.query)
        if m:
            return m.group(1)
        return self.path if self.path in ("git-upload-pack", "git-receive-pack") else None


@dataclass
class _Injection:
    kind: Literal["status", "hang"]
    remaining: int
    status: int = 503
    seconds: float = 0.0


@dataclass
class PublishedRepo:
    """A bare repository served by :class:`GitHttpServer`, with its own records and faults."""

    alias: str
    path: Path
    base_url: str
    token: str | None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _records: list[HttpRequestRecord] = field(default_factory=list, repr=False)
    _injections: list[_Injection] = field(default_factory=list, repr=False)
    _released: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def url(self) -> str:
        return f"{self.base_url}/{self.alias}"

    def url_with_token(self, token: str | None = None, user: str = "x-access-token") -> str:
        """The URL with credentials in it, as forges hand out (``https://user:token@host/...``)."""
        secret = token if token is not None else self.token
        if secret is None:
            raise ValueError("repository has no token")
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{quote(user, safe='')}:{quote(secret, safe='')}@{parts.netloc}{parts.path}"

    def requests(self) -> list[HttpRequestRecord]:
        with self._lock:
            return list(self._records)

    def count(self, service: str | None = None, status: int | None = None) -> int:
        return sum(
            1
            for r in self.requests()
            if (service is None or r.service == service) and (status is None or r.status == status)
        )

    def clear_requests(self) -> None:
        with self._lock:
            self._records.clear()

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """The next ``n`` requests to this repository are answered ``status`` with no body."""
        with self._lock:
            self._injections.append(_Injection("status", n, status=status))

    def hang_next(self, n: int = 1, seconds: float = 10.0) -> None:
        """The next ``n`` requests get no answer for ``seconds`` (capped), then the connection drops."""
        with self._lock:
            self._injections.append(_Injection("hang", n, seconds=min(seconds, MAX_HANG_SECONDS)))

    def release_hangs(self) -> None:
        """End every current and future hang at once (teardown)."""
        self._released.set()

    def _take_injection(self) -> _Injection | None:
        with self._lock:
            while self._injections:
                head = self._injections[0]
                if head.remaining <= 0:
                    self._injections.pop(0)
                    continue
                head.remaining -= 1
                return head
            return None

    def _record(self, record: HttpRequestRecord) -> None:
        with self._lock:
            self._records.append(record)


def _authorized_user(header: str | None, token: str) -> str | None:
    """The user name when ``Authorization`` carries ``token`` (Basic password or Bearer), else None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return "bearer" if value.strip() == token else None
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError:
            return None
        return (user or "token") if password == token else None
    return None


class _GitHttpHandler(BaseHTTPRequestHandler):
    server: _GitHttpServerImpl
    # HTTP/1.0: one request per connection, so a hung request never holds a reused socket.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        alias, _, rest = path.lstrip("/").partition("/")
        repo = self.server.owner.lookup(alias)
        if repo is None:
            self._send(404, b"no such repository\n")
            return
        body = read_body(self) if self.command == "POST" else b""

        def record(status: int, user: str | None, injected: str | None = None) -> None:
            repo._record(HttpRequestRecord(self.command, rest, query, status, user, injected))

        injection = repo._take_injection()
        if injection is not None and injection.kind == "status":
            record(injection.status, None, "status")
            self._send(injection.status, b"injected failure\n")
            return
        if injection is not None and injection.kind == "hang":
            record(0, None, "hang")
            repo._released.wait(injection.seconds)
            self.close_connection = True
            return

        user: str | None = None
        if repo.token is not None:
            user = _authorized_user(self.headers.get("Authorization"), repo.token)
            if user is None:
                record(401, None)
                self._send(401, b"authentication required\n", {"WWW-Authenticate": 'Basic realm="git"'})
                return

        status, headers, payload = self.server.owner.run_backend(repo, self, rest, query, body, user)
        record(status, user)
        self._send(status, payload, headers)

    def _send(self, status: int, payload: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _GitHttpServerImpl(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets bursts of parallel clients; real servers queue more.
    request_queue_size = 128
    owner: GitHttpServer


class GitHttpServer:
    """``git http-backend`` behind a threaded HTTP server on 127.0.0.1 and a free port.

    One server serves many bare repositories (each published under its own alias), so a
    session-scoped server still gives every test repositories with their own records and faults.
    Pushing over HTTP is enabled (``http.receivepack``).
    """

    def __init__(self, home: Path) -> None:
        self.env = isolated_git_env(home)
        self._repos: dict[str, PublishedRepo] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd = _GitHttpServerImpl(("127.0.0.1", 0), _GitHttpHandler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="git-http", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def publish(self, bare: Path, *, token: str | None = None) -> PublishedRepo:
        """Serve the bare repository ``bare``; with ``token``, requests need it (else 401)."""
        if not (bare / "HEAD").exists():
            raise ValueError(f"{bare} is not a bare git repository")
        name = bare.name if bare.name.endswith(".git") else f"{bare.name}.git"
        alias = f"{next(self._ids)}-{name}"
        repo = PublishedRepo(alias=alias, path=bare.resolve(), base_url=self.base_url, token=token)
        with self._lock:
            self._repos[alias] = repo
        return repo

    def unpublish(self, repo: PublishedRepo) -> None:
        repo.release_hangs()
        with self._lock:
            self._repos.pop(repo.alias, None)

    def lookup(self, alias: str) -> PublishedRepo | None:
        with self._lock:
            return self._repos.get(alias)

    def run_backend(
        self,
        repo: PublishedRepo,
        handler: BaseHTTPRequestHandler,
        rest: str,
        query: str,
        body: bytes,
        user: str | None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One CGI call of ``git http-backend`` for a request below ``repo``."""
        env = dict(self.env)
        env.update(
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL="HTTP/1.1",
            REQUEST_METHOD=handler.command,
            GIT_PROJECT_ROOT=str(repo.path.parent),
            GIT_HTTP_EXPORT_ALL="1",
            PATH_INFO=f"/{repo.path.name}/{rest}",
            QUERY_STRING=query,
            REMOTE_ADDR=handler.client_address[0],
            CONTENT_TYPE=handler.headers.get("Content-Type", ""),
            CONTENT_LENGTH=str(len(body)),
            # receive-pack is off by default for anonymous users; tests push over HTTP too.
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.receivepack",
            GIT_CONFIG_VALUE_0="true",
        )
        if user is not None:
            env["REMOTE_USER"] = user
        for header in ("Content-Encoding", "Git-Protocol", "Accept"):
            value = handler.headers.get(header)
            if value is not None:
                env["HTTP_" + header.upper().replace("-", "_")] = value
        proc = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=120, check=False
        )
        head, sep, payload = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split(" ", 1)[0])
            elif key:
                headers[key.strip()] = value.strip()
        if proc.returncode != 0 and not sep:
            return 500, {"Content-Type": "text/plain"}, proc.stderr
        return status, headers, payload

    def close(self) -> None:
        with self._lock:
            repos = list(self._repos.values())
        for repo in repos:
            repo.release_hangs()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def started_git_http_server(home: Path) -> Iterator[GitHttpServer]:
    """Generator form for fixtures: yields a running server and always closes it."""
    server = GitHttpServer(home)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(home, ignore_errors=True)
