"""A local stand-in for the GitHub, GitLab and Gitea REST endpoints the reconciler calls.

GitHub and GitLab cannot run here (a real Gitea can: see ``gitea_server`` and the contract tests
that hold this fake to it), so this server is the next best thing for all three: every
request is checked against the provider's published OpenAPI description (see
``openapi_assets``) with ``openapi-core`` before it is answered, and every answer is checked
against the same description, so the fake cannot drift from the real API unnoticed. It keeps
enough state (statuses, comments, pull requests) for read-after-write, checks each provider's
auth headers, records every request, and injects the failures a client must survive: 5xx, rate
limits (403 + ``X-RateLimit-*``, 429 + ``Retry-After``), hangs past the client's timeout, slow
answers (``delay_next``), and an outage: ``stop()`` refuses connections on the server's port
(kept bound, so no other process takes it) and ``start()`` serves on it again.

One server serves the three providers under their own base URLs::

    GitHub  http://127.0.0.1:<port>/github            (like GitHub Enterprise's /api/v3)
    GitLab  http://127.0.0.1:<port>/gitlab/api/v4
    Gitea   http://127.0.0.1:<port>/gitea/api/v1
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.infra.http_body import read_body
from tests.infra.openapi_assets import OPERATIONS, SPEC_SERVER, ensure_assets

Provider = Literal["github", "gitlab", "gitea"]
PROVIDERS: tuple[Provider, ...] = ("github", "gitlab", "gitea")
BASE_PATHS: dict[Provider, str] = {"github": "/github", "gitlab": "/gitlab/api/v4", "gitea": "/gitea/api/v1"}
DEFAULT_TOKENS: dict[Provider, str] = {
    "github": "ghp_test-token",
    "gitlab": "glpat-test-token",
    "gitea": "gitea-test-token",
}
# Authorization schemes each forge accepts for an API token (GitLab also takes PRIVATE-TOKEN).
_AUTH_SCHEMES: dict[Provider, tuple[str, ...]] = {
    "github": ("bearer", "token"),
    "gitlab": ("bearer",),
    "gitea": ("token", "bearer"),
}
# Upper bound of an injected hang, so a forgotten injection cannot stall a test run.
MAX_HANG_SECONDS = 60.0

GITLAB_OPERATIONS: list[tuple[str, str]] = [
    ("post", "/projects/{id}/statuses/{sha}"),
    ("get", "/projects/{id}/repository/commits/{sha}/statuses"),
    ("get", "/projects/{id}/merge_requests"),
    ("get", "/projects/{id}/merge_requests/{merge_request_iid}"),
    ("get", "/projects/{id}/merge_requests/{merge_request_iid}/notes"),
    ("post", "/projects/{id}/merge_requests/{merge_request_iid}/notes"),
    ("put", "/projects/{id}/merge_requests/{merge_request_iid}/notes/{note_id}"),
]


@dataclass(frozen=True)
class RecordedRequest:
    provider: Provider | None
    method: str
    path: str  # below the provider's base path, percent-encoding kept
    query: dict[str, list[str]]
    headers: Headers  # case-insensitive, as HTTP headers are
    body: bytes
    json: Any  # parsed JSON (or form fields as a dict) when the body had any
    status: int  # 0 when the connection was dropped without an answer (hang)
    injected: str | None  # "status", "rate_limit", "retry_after" or "hang" (a delayed answer is not injected)
    at: float  # when the answer was sent (or the connection dropped)


@dataclass(frozen=True)
class Violation:
    """A request the provider would reject, or an answer of ours its API would not give."""

    provider: Provider | None
    method: str
    path: str
    kind: Literal["schema", "unknown_endpoint", "response"]
    errors: tuple[str, ...]

    def __str__(self) -> str:
        return f"[{self.kind}] {self.provider} {self.method} {self.path}: " + "; ".join(self.errors)


@dataclass
class _Injection:
    kind: Literal["status", "rate_limit", "retry_after", "hang", "delay"]
    remaining: int
    provider: Provider | None
    status: int = 500
    seconds: float = 0.0
    path: re.Pattern[str] | None = None  # only requests whose path this finds


@dataclass
class _OpenAPIRequest:
    """The request as openapi-core reads it (its ``Request`` protocol)."""

    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters
    host_url: str = SPEC_SERVER


@dataclass
class _OpenAPIResponse:
    status_code: int
    data: bytes | None
    headers: Headers
    content_type: str = "application/json"


@dataclass
class _Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Call:
    """One routed API call: the handler's whole input."""

    provider: Provider
    method: str
    repo: str
    params: dict[str, str]
    body: Any
    query: dict[str, list[str]]
    url: str  # without the query, for paging links


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _template_regex(template: str) -> re.Pattern[str]:
    # Refs such as ``heads/main`` may contain slashes; everything else is one segment.
    def group(m: re.Match[str]) -> str:
        name = m.group(1)
        return f"(?P<{name}>.+)" if name in ("ref",) else f"(?P<{name}>[^/]+)"

    return re.compile("^" + re.sub(r"\{([a-z_]+)\}", group, template) + "$")


def _error_lines(error: BaseException) -> list[str]:
    # The exception text embeds the whole offending value; keep violations readable.
    text = str(error)
    lines = [f"{type(error).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"]
    cause = error.__cause__
    for schema_error in getattr(cause, "schema_errors", None) or ():
        where = "/".join(str(p) for p in getattr(schema_error, "absolute_path", ()))
        lines.append(f"{getattr(schema_error, 'message', schema_error)}" + (f" at {where}" if where else ""))
    return lines


class _Store:
    """What the fake forge remembers between requests, per provider and repository."""

    def __init__(self) -> None:
        self.ids = itertools.count(1001)
        self.statuses: dict[tuple[Provider, str, str], list[dict[str, Any]]] = {}
        self.comments: dict[tuple[Provider, str, int], list[dict[str, Any]]] = {}
        self.pulls: dict[tuple[Provider, str], list[dict[str, Any]]] = {}


class ForgeServer:
    """The fake forge; see the module docstring. Thread safe."""

    def __init__(self, tokens: Mapping[Provider, str] | None = None) -> None:
        specs = ensure_assets()
        self.tokens: dict[Provider, str] = dict(tokens or DEFAULT_TOKENS)
        self._openapi: dict[Provider, OpenAPI] = {p: OpenAPI.from_dict(specs[p]) for p in PROVIDERS}
        self._specs = specs
        operations: dict[Provider, list[tuple[str, str]]] = {
            "github": OPERATIONS["github"],
            "gitea": OPERATIONS["gitea"],
            "gitlab": GITLAB_OPERATIONS,
        }
        self._routes: dict[Provider, list[tuple[str, str, re.Pattern[str]]]] = {
            p: [(m, t, _template_regex(t)) for m, t in ops] for p, ops in operations.items()
        }
        self._lock = threading.RLock()
        self._released = threading.Event()
        self._records: list[RecordedRequest] = []
        self._violations: list[Violation] = []
        self._injections: list[_Injection] = []
        self._store = _Store()
        self._expect_violations = False
        self._gitlab_ids: dict[str, int] = {}
        self._httpd = _ForgeHTTPServer(("127.0.0.1", 0), _ForgeHandler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="forge", daemon=True)
        self._thread.start()
        self._port = int(self._httpd.server_address[1])
        self._placeholder: socket.socket | None = None  # holds the port while stopped

    # -- addresses -----------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def url(self, provider: Provider) -> str:
        """The API base URL a client of ``provider`` is configured with."""
        return self.root_url + BASE_PATHS[provider]

    def auth_headers(self, provider: Provider, token: str | None = None) -> dict[str, str]:
        """Headers a well-behaved client of ``provider`` sends."""
        secret = token if token is not None else self.tokens[provider]
        if provider == "gitlab":
            return {"PRIVATE-TOKEN": secret}
        return {"Authorization": f"{'Bearer' if provider == 'github' else 'token'} {secret}"}

    # -- records and assertions ----------------------------------------------------------------

    def requests(
        self, provider: Provider | None = None, method: str | None = None, path: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests, oldest first; ``path`` is a regular expression searched in the path."""
        with self._lock:
            records = list(self._records)
        return [
            r
            for r in records
            if (provider is None or r.provider == provider)
            and (method is None or r.method == method.upper())
            and (path is None or re.search(path, r.path))
        ]

    @property
    def violations(self) -> list[Violation]:
        with self._lock:
            return list(self._violations)

    def assert_no_violations(self) -> None:
        found = self.violations
        assert not found, "forge API violations:\n" + "\n".join(str(v) for v in found)

    def expect_violations(self) -> None:
        """Say that this test sends invalid requests on purpose (skips the fixture's final check)."""
        self._expect_violations = True

    @property
    def violations_expected(self) -> bool:
        return self._expect_violations

    def statuses(self, provider: Provider, repo: str, sha: str) -> list[dict[str, Any]]:
        """Statuses stored for ``sha`` in ``repo`` (``owner/name``; GitLab: project path or id)."""
        with self._lock:
            return copy.deepcopy(self._store.statuses.get((provider, self._repo_key(provider, repo), sha), []))

    def comments(self, provider: Provider, repo: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            key = (provider, self._repo_key(provider, repo), number)
            return copy.deepcopy(self._store.comments.get(key, []))

    def description_errors(
        self,
        provider: Provider,
        method: str,
        path: str,
        status: int,
        body: Any,
        query: Mapping[str, str] | None = None,
    ) -> list[str]:
        """What ``provider``'s API description finds wrong in this answer to ``method path``.

        Lets a test hold a real server's answers to the same description the fake is held to.
        """
        request = _OpenAPIRequest(
            path=path,
            method=method.lower(),
            body=None,
            content_type="application/json",
            parameters=RequestParameters(query=ImmutableMultiDict(list((query or {}).items()))),
        )
        response = _OpenAPIResponse(status, json.dumps(body).encode(), Headers())
        result = self._openapi[provider].unmarshal_response(request, response)
        return [line for e in result.errors for line in _error_lines(e)]

    # -- state set-up --------------------------------------------------------------------------

    def gitlab_project_id(self, path: str) -> int:
        """The numeric id GitLab gives project ``path``; either form then names the same project."""
        with self._lock:
            return self._gitlab_ids.setdefault(path, 4200 + len(self._gitlab_ids))

    def add_pull_request(
        self,
        provider: Provider,
        repo: str,
        number: int,
        *,
        head_sha: str,
        head_ref: str = "feature",
        base_ref: str = "main",
        base_sha: str | None = None,
        title: str | None = None,
        state: Literal["open", "closed"] = "open",
        labels: Sequence[str] = (),
        fork: bool = False,
    ) -> dict[str, Any]:
        """Make pull request (GitLab: merge request) ``number`` exist, as the forge answers it;
        ``fork``: its head lives in another repository (a stranger's copy)."""
        with self._lock:
            key = (provider, self._repo_key(provider, repo))
            pulls = [p for p in self._store.pulls.get(key, []) if self._pull_number(provider, p) != number]
            pull = self._make_pull(
                provider, repo, number, head_sha, head_ref, base_ref, base_sha or "0" * 40, title, state
            )
            if fork and provider == "github":
                head_repo = copy.deepcopy(pull["base"]["repo"])
                head_repo.update(id=int(head_repo["id"]) + 1000, full_name="mallory/" + repo.split("/")[-1])
                pull["head"]["repo"] = head_repo
            elif fork and provider == "gitea":
                pull["head"]["repo_id"] = 2
            elif fork:
                pull["source_project_id"] = 9999
            pull["labels"] = [self._label(provider, name, i) for i, name in enumerate(labels, 1)]
            pulls.append(pull)
            self._store.pulls[key] = pulls
            return copy.deepcopy(pull)

    def set_labels(self, provider: Provider, repo: str, number: int, labels: Sequence[str]) -> None:
        """A maintainer (re)labels pull request ``number``."""
        with self._lock:
            for pull in self._store.pulls.get((provider, self._repo_key(provider, repo)), []):
                if self._pull_number(provider, pull) == number:
                    pull["labels"] = [self._label(provider, name, i) for i, name in enumerate(labels, 1)]
                    return
        raise KeyError(f"no pull request {number} in {repo}")

    def _label(self, provider: Provider, name: str, index: int) -> Any:
        if provider == "gitlab":
            return name  # GitLab lists label names unless asked `with_labels_details`
        if provider == "github":
            return {
                "id": index,
                "node_id": f"LA_{index}",
                "url": f"https://api.github.com/labels/{index}",
                "name": name,
                "description": None,
                "color": "ededed",
                "default": False,
            }
        return {
            "id": index,
            "name": name,
            "exclusive": False,
            "is_archived": False,
            "color": "ededed",
            "description": "",
            "url": f"https://gitea.example.test/labels/{index}",
        }

    # -- failure injection ---------------------------------------------------------------------

    def fail_next(
        self, n: int = 1, status: int = 500, provider: Provider | None = None, path: str | None = None
    ) -> None:
        """The next ``n`` requests (to ``provider``, or any; whose path ``path`` finds, a regular
        expression, or any) are answered ``status``."""
        self._inject(_Injection("status", n, provider, status=status, path=re.compile(path) if path else None))

    def rate_limit_next(self, n: int = 1, reset_after: int = 60, provider: Provider | None = None) -> None:
        """403 with ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset`` ``reset_after`` s ahead."""
        self._inject(_Injection("rate_limit", n, provider, status=403, seconds=reset_after))

    def throttle_next(self, n: int = 1, retry_after: int = 1, provider: Provider | None = None) -> None:
        """429 with ``Retry-After: retry_after``."""
        self._inject(_Injection("retry_after", n, provider, status=429, seconds=retry_after))

    def hang_next(self, n: int = 1, seconds: float = 10.0, provider: Provider | None = None) -> None:
        """No answer for ``seconds`` (capped at MAX_HANG_SECONDS), then the connection is closed."""
        self._inject(_Injection("hang", n, provider, seconds=min(seconds, MAX_HANG_SECONDS)))

    def delay_next(self, n: int = 1, seconds: float = 10.0, provider: Provider | None = None) -> None:
        """The next ``n`` requests are answered as usual, but only after ``seconds`` (capped at
        MAX_HANG_SECONDS, cut short by ``release_hangs()``): a slow forge."""
        self._inject(_Injection("delay", n, provider, seconds=min(seconds, MAX_HANG_SECONDS)))

    def release_hangs(self) -> None:
        """End the hangs and delays in progress now (hung requests drop, delayed ones are answered)."""
        with self._lock:
            released, self._released = self._released, threading.Event()
        released.set()

    def clear_injections(self) -> None:
        """Drop the injections not used up yet (an outage injected as "the next N" ends now)."""
        with self._lock:
            self._injections.clear()

    def _inject(self, injection: _Injection) -> None:
        with self._lock:
            self._injections.append(injection)

    def _take_injection(self, provider: Provider | None, path: str) -> _Injection | None:
        with self._lock:
            self._injections = [i for i in self._injections if i.remaining > 0]
            for injection in self._injections:
                if injection.provider in (None, provider) and (injection.path is None or injection.path.search(path)):
                    injection.remaining -= 1
                    return injection
            return None

    # -- lifecycle -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget requests, violations, injections and state (between tests); serve if stopped."""
        self.start()
        self._released.set()  # end hangs left by the previous test
        with self._lock:
            self._records.clear()
            self._violations.clear()
            self._injections.clear()
            self._store = _Store()
            self._gitlab_ids.clear()
            self._expect_violations = False
            self._released = threading.Event()

    @property
    def running(self) -> bool:
        return self._placeholder is None

    def stop(self) -> None:
        """A forge outage: open connections are cut and new ones refused, until ``start()``.

        The port stays bound by a socket that does not listen (the kernel refuses connections to
        it), so the restarted server gets the same address and no other process takes it.
        """
        if not self.running:
            return
        self.release_hangs()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        self._thread.join(timeout=10)
        placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        placeholder.bind(("127.0.0.1", self._port))
        self._placeholder = placeholder

    def start(self) -> None:
        """Serve again on the same port after ``stop()`` (records, state and injections are kept)."""
        if self.running:
            return
        placeholder = self._placeholder
        assert placeholder is not None
        httpd = _ForgeHTTPServer(("127.0.0.1", self._port), _ForgeHandler, bind_and_activate=False)
        httpd.socket.close()
        httpd.socket = placeholder  # already bound to the port: listening on it is the restart
        httpd.server_address = placeholder.getsockname()
        httpd.server_activate()
        httpd.owner = self
        self._httpd = httpd
        self._placeholder = None
        self._thread = threading.Thread(target=httpd.serve_forever, name="forge", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.start()
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    # -- request handling ----------------------------------------------------------------------

    def handle(self, handler: _ForgeHandler) -> None:
        raw_path, _, raw_query = handler.path.partition("?")
        body = read_body(handler)
        provider = next((p for p in PROVIDERS if raw_path.startswith(BASE_PATHS[p] + "/")), None)
        path = raw_path[len(BASE_PATHS[provider]) :] if provider else raw_path
        query_pairs = parse_qsl(raw_query, keep_blank_values=True)
        query: dict[str, list[str]] = {}
        for k, v in query_pairs:
            query.setdefault(k, []).append(v)
        content_type = handler.headers.get("Content-Type", "")
        parsed = _parse_body(body, content_type)

        def finish(reply: _Reply | None, injected: str | None = None) -> None:
            record = RecordedRequest(
                provider=provider,
                method=handler.command,
                path=path,
                query=query,
                headers=Headers(list(handler.headers.items())),
                body=body,
                json=parsed,
                status=reply.status if reply else 0,
                injected=injected,
                at=time.time(),
            )
            with self._lock:
                self._records.append(record)
            if reply is not None:
                handler.send_json(reply.status, reply.body, reply.headers)

        injection = self._take_injection(provider, path)
        if injection is not None and injection.kind == "delay":
            self._released.wait(injection.seconds)
            injection = None
        if injection is not None:
            if injection.kind == "hang":
                released = self._released
                finish(None, "hang")
                released.wait(injection.seconds)
                handler.close_connection = True
                return
            finish(self._injected_reply(injection), injection.kind)
            return

        if provider is None:
            self._violate(None, handler.command, path, "unknown_endpoint", ["no provider under this path"])
            finish(_Reply(404, {"message": "Not Found"}))
            return

        if not self._authorized(provider, handler.headers):
            finish(self._unauthorized(provider, handler.headers))
            return

        api_request = _OpenAPIRequest(
            path=path,
            method=handler.command.lower(),
            body=body if body else None,
            content_type=content_type.lower(),
            parameters=RequestParameters(
                query=ImmutableMultiDict(query_pairs),
                header=Headers(list(handler.headers.items())),
            ),
        )
        result = self._openapi[provider].unmarshal_request(api_request)
        if result.errors:
            names = {type(e).__name__ for e in result.errors}
            lines = [line for e in result.errors for line in _error_lines(e)]
            if names & {"PathNotFound", "OperationNotFound", "PathsNotFound", "ServerNotFound"}:
                self._violate(provider, handler.command, path, "unknown_endpoint", lines)
                finish(_Reply(404, {"message": "Not Found"}))
            else:
                self._violate(provider, handler.command, path, "schema", lines)
                finish(_Reply(422, {"message": "Validation Failed", "errors": lines}))
            return

        route = self._route(provider, handler.command.lower(), path)
        if route is None:  # in the description but not in our route list: our omission
            self._violate(provider, handler.command, path, "unknown_endpoint", ["not implemented by the fake"])
            finish(_Reply(501, {"message": "not implemented by the fake forge"}))
            return
        template, params = route
        try:
            with self._lock:
                url = self.root_url + raw_path
                reply = self._dispatch(provider, handler.command.lower(), template, params, parsed, query, url)
        except Exception as error:  # a defect of the fake: make it loud, not a dropped connection
            self._violate(provider, handler.command, path, "response", [f"fake forge crashed: {error!r}"])
            finish(_Reply(500, {"message": f"fake forge crashed: {error!r}"}))
            return
        self._check_response(provider, api_request, reply)
        finish(reply)

    def _violate(
        self,
        provider: Provider | None,
        method: str,
        path: str,
        kind: Literal["schema", "unknown_endpoint", "response"],
        errors: list[str],
    ) -> None:
        with self._lock:
            self._violations.append(Violation(provider, method, path, kind, tuple(errors)))

    def _route(self, provider: Provider, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        for m, template, regex in self._routes[provider]:
            match = regex.match(path)
            if m == method and match:
                return template, {k: unquote(v) for k, v in match.groupdict().items()}
        return None

    def _check_response(self, provider: Provider, request: _OpenAPIRequest, reply: _Reply) -> None:
        # Error answers follow each forge's own error conventions, which the descriptions
        # document unevenly; successes are what clients parse, so those must match exactly.
        if not 200 <= reply.status < 300:
            return
        data = json.dumps(reply.body).encode()
        response = _OpenAPIResponse(reply.status, data, Headers(list(reply.headers.items())))
        result = self._openapi[provider].unmarshal_response(request, response)
        if result.errors:
            lines = [line for e in result.errors for line in _error_lines(e)]
            self._violate(provider, request.method.upper(), request.path, "response", lines)

    def _injected_reply(self, injection: _Injection) -> _Reply:
        if injection.kind == "rate_limit":
            reset = int(time.time() + injection.seconds)
            return _Reply(
                403,
                {"message": "API rate limit exceeded (injected)"},
                {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
            )
        if injection.kind == "retry_after":
            return _Reply(
                429, {"message": "Too Many Requests (injected)"}, {"Retry-After": str(int(injection.seconds))}
            )
        return _Reply(injection.status, {"message": "injected failure"})

    # -- auth ----------------------------------------------------------------------------------

    def _presented_token(self, provider: Provider, headers: Any) -> str | None:
        private: str | None = headers.get("PRIVATE-TOKEN")
        if provider == "gitlab" and private:
            return private
        authorization: str = headers.get("Authorization") or ""
        scheme, _, value = authorization.partition(" ")
        accepted = _AUTH_SCHEMES[provider]
        return value.strip() if scheme.lower() in accepted and value.strip() else None

    def _authorized(self, provider: Provider, headers: Any) -> bool:
        return self._presented_token(provider, headers) == self.tokens[provider]

    def _unauthorized(self, provider: Provider, headers: Any) -> _Reply:
        missing = self._presented_token(provider, headers) is None
        if provider == "github":
            message = "Requires authentication" if missing else "Bad credentials"
            return _Reply(401, {"message": message, "documentation_url": "https://docs.github.com/rest"})
        if provider == "gitlab":
            return _Reply(401, {"message": "401 Unauthorized"})
        return _Reply(401, {"message": "token is required" if missing else "user does not exist"})

    # -- the API -------------------------------------------------------------------------------

    def _repo_key(self, provider: Provider, repo: str) -> str:
        if provider == "gitlab":
            by_id = {str(i): p for p, i in self._gitlab_ids.items()}
            return by_id.get(repo, repo)
        return repo.lower()  # GitHub and Gitea owner/repo names are case-insensitive

    def _dispatch(
        self,
        provider: Provider,
        method: str,
        template: str,
        params: dict[str, str],
        body: Any,
        query: dict[str, list[str]],
        url: str,
    ) -> _Reply:
        handlers: dict[str, Callable[[_Call], _Reply]] = {
            "/statuses/{sha}": self._statuses,
            "/commits/{ref}/statuses": self._statuses,
            "/commits/{ref}/status": self._combined_status,
            "/repository/commits/{sha}/statuses": self._statuses,
            "/comments": self._comments,
            "/comments/{comment_id}": self._comment,
            "/comments/{id}": self._comment,
            "/notes": self._comments,
            "/notes/{note_id}": self._comment,
            "/pulls": self._pulls,
            "/merge_requests": self._pulls,
            "/pulls/{pull_number}": self._pull,
            "/pulls/{index}": self._pull,
            "/merge_requests/{merge_request_iid}": self._pull,
        }
        for suffix, fn in handlers.items():
            if template.endswith(suffix):
                repo = params["id"] if provider == "gitlab" else f"{params['owner']}/{params['repo']}"
                key = self._repo_key(provider, repo)
                return fn(_Call(provider, method, key, params, body or {}, query, url))
        raise AssertionError(f"no handler for {template}")

    def _user(self, provider: Provider) -> dict[str, Any]:
        if provider == "github":
            example = self._example("github", "status")
            return copy.deepcopy(example["creator"])
        if provider == "gitlab":
            return {
                "id": 1,
                "username": "reconciler-bot",
                "name": "Reconciler Bot",
                "state": "active",
                "avatar_url": None,
                "web_url": "https://gitlab.example.test/reconciler-bot",
            }
        return {
            "id": 1,
            "login": "reconciler-bot",
            "full_name": "Reconciler Bot",
            "email": "bot@example.test",
        }

    def _example(self, provider: Provider, name: str) -> Any:
        return copy.deepcopy(self._specs[provider]["components"]["examples"][name]["value"])

    def _statuses(self, call: _Call) -> _Reply:
        sha = call.params.get("sha") or call.params["ref"]
        key = (call.provider, call.repo, sha)
        stored = self._store.statuses.setdefault(key, [])
        if call.method == "get":
            # Newest first, as all three forges list them.
            return _paginate(call.provider, list(reversed(stored)), call.query, call.url)
        now = _now()
        new_id = next(self._store.ids)
        if call.provider == "github":
            status = self._example("github", "status")
            status.update(
                id=new_id,
                node_id=f"SC_{new_id}",
                state=call.body["state"],
                description=call.body.get("description"),
                target_url=call.body.get("target_url"),
                context=call.body.get("context", "default"),
                created_at=now,
                updated_at=now,
                url=f"https://api.github.com/repos/{call.repo}/statuses/{sha}",
            )
        elif call.provider == "gitlab":
            name = call.body.get("name") or call.body.get("context") or "default"
            ref = call.body.get("ref")
            latest = next((s for s in reversed(stored) if s["name"] == name and s["ref"] == ref), None)
            # GitLab refuses a transition to the state a job already has.
            state = call.body["state"]
            if latest is not None and latest["status"] == state:
                return _Reply(400, {"message": f"Cannot transition status via :{state} from :{state}"})
            status = {
                "id": latest["id"] if latest else new_id,
                "sha": sha,
                "ref": ref,
                "status": call.body["state"],
                "name": name,
                "target_url": call.body.get("target_url"),
                "description": call.body.get("description"),
                "created_at": latest["created_at"] if latest else now,
                "started_at": None,
                "finished_at": now if call.body["state"] in ("success", "failed", "canceled", "skipped") else None,
                "allow_failure": False,
                "coverage": call.body.get("coverage"),
                "pipeline_id": int(call.body.get("pipeline_id") or 1),
                "author": self._user("gitlab"),
            }
        else:
            status = {
                "id": new_id,
                "status": call.body["state"],
                "context": call.body.get("context", ""),
                "description": call.body.get("description", ""),
                "target_url": call.body.get("target_url", ""),
                "url": f"https://gitea.example.test/api/v1/repos/{call.repo}/statuses/{sha}",
                "creator": self._user("gitea"),
                "created_at": now,
                "updated_at": now,
            }
        stored.append(status)
        return _Reply(201, status)

    def _combined_status(self, call: _Call) -> _Reply:
        latest: dict[str, dict[str, Any]] = {}
        for status in self._store.statuses.get((call.provider, call.repo, call.params["ref"]), []):
            latest[status["context"]] = status
        states = {s["state"] for s in latest.values()}
        combined = (
            "failure"
            if states & {"error", "failure"}
            else "pending"
            if not states or "pending" in states
            else "success"
        )
        reply = self._example("github", "combined-commit-status")
        reply.update(
            state=combined,
            sha=call.params["ref"],
            total_count=len(latest),
            statuses=list(latest.values()),
        )
        return _Reply(200, reply)

    def _comments(self, call: _Call) -> _Reply:
        number = int(call.params.get("issue_number") or call.params.get("index") or call.params["merge_request_iid"])
        stored = self._store.comments.setdefault((call.provider, call.repo, number), [])
        if call.method == "get":
            return _paginate(call.provider, copy.deepcopy(stored), call.query, call.url)
        now = _now()
        new_id = next(self._store.ids)
        if call.provider == "github":
            comment = self._example("github", "issue-comment")
            comment.update(
                id=new_id,
                node_id=f"IC_{new_id}",
                body=call.body["body"],
                created_at=now,
                updated_at=now,
                url=f"https://api.github.com/repos/{call.repo}/issues/comments/{new_id}",
                html_url=f"https://github.com/{call.repo}/pull/{number}#issuecomment-{new_id}",
                issue_url=f"https://api.github.com/repos/{call.repo}/issues/{number}",
            )
        elif call.provider == "gitlab":
            comment = {
                "id": new_id,
                "type": None,
                "body": call.body["body"],
                "author": self._user("gitlab"),
                "created_at": now,
                "updated_at": now,
                "system": False,
                "noteable_id": 500 + number,
                "noteable_type": "MergeRequest",
                "noteable_iid": number,
                "project_id": self._gitlab_ids.get(call.repo, 0),
                "resolvable": False,
                "confidential": False,
                "internal": bool(call.body.get("internal", False)),
            }
        else:
            comment = {
                "id": new_id,
                "body": call.body["body"],
                "user": self._user("gitea"),
                "html_url": f"https://gitea.example.test/{call.repo}/pulls/{number}#issuecomment-{new_id}",
                "issue_url": f"https://gitea.example.test/{call.repo}/issues/{number}",
                "pull_request_url": f"https://gitea.example.test/{call.repo}/pulls/{number}",
                "created_at": now,
                "updated_at": now,
            }
        stored.append(comment)
        return _Reply(201, comment)

    def _comment(self, call: _Call) -> _Reply:
        names = {"github": "comment_id", "gitlab": "note_id", "gitea": "id"}
        comment_id = int(call.params[names[call.provider]])
        for (p, r, number), stored in self._store.comments.items():
            if p != call.provider or r != call.repo:
                continue
            if call.provider == "gitlab" and number != int(call.params["merge_request_iid"]):
                continue
            for comment in stored:
                if comment["id"] == comment_id:
                    comment["body"] = call.body["body"]
                    comment["updated_at"] = _now()
                    return _Reply(200, copy.deepcopy(comment))
        not_found = "404 Not found" if call.provider == "gitlab" else "Not Found"
        return _Reply(404, {"message": not_found})

    def _pull_number(self, provider: Provider, pull: dict[str, Any]) -> int:
        return int(pull["iid"] if provider == "gitlab" else pull["number"])

    def _pulls(self, call: _Call) -> _Reply:
        pulls = self._store.pulls.get((call.provider, call.repo), [])
        default = "all" if call.provider == "gitlab" else "open"
        wanted = (call.query.get("state") or [default])[0]
        if wanted != "all":
            pulls = [p for p in pulls if p["state"] == wanted]
        return _paginate(call.provider, copy.deepcopy(pulls), call.query, call.url)

    def _pull(self, call: _Call) -> _Reply:
        number = int(call.params.get("pull_number") or call.params.get("index") or call.params["merge_request_iid"])
        for pull in self._store.pulls.get((call.provider, call.repo), []):
            if self._pull_number(call.provider, pull) == number:
                if call.provider == "github":
                    full = self._example("github", "pull-request")
                    full.update({k: v for k, v in pull.items() if k in full})
                    return _Reply(200, full)
                return _Reply(200, copy.deepcopy(pull))
        return _Reply(404, {"message": "Not Found"})

    def _make_pull(
        self,
        provider: Provider,
        repo: str,
        number: int,
        head_sha: str,
        head_ref: str,
        base_ref: str,
        base_sha: str,
        title: str | None,
        state: str,
    ) -> dict[str, Any]:
        title = title or f"Change #{number}"
        now = _now()
        if provider == "github":
            pull: dict[str, Any] = _fresh_github_pull(self._example("github", "pull-request-simple-items")[0])
            owner = repo.split("/", 1)[0]
            pull.update(
                id=700 + number,
                number=number,
                state=state,
                title=title,
                url=f"https://api.github.com/repos/{repo}/pulls/{number}",
                html_url=f"https://github.com/{repo}/pull/{number}",
                created_at=now,
                updated_at=now,
            )
            pull["head"].update(ref=head_ref, sha=head_sha, label=f"{owner}:{head_ref}")
            pull["base"].update(ref=base_ref, sha=base_sha, label=f"{owner}:{base_ref}")
            return pull
        if provider == "gitlab":
            return {
                "id": 500 + number,
                "iid": number,
                "project_id": self.gitlab_project_id(repo),
                "title": title,
                "description": None,
                "state": "opened" if state == "open" else "closed",
                "source_branch": head_ref,
                "target_branch": base_ref,
                "source_project_id": self.gitlab_project_id(repo),
                "target_project_id": self.gitlab_project_id(repo),
                "labels": [],
                "sha": head_sha,
                "merge_commit_sha": None,
                "web_url": f"https://gitlab.example.test/{repo}/-/merge_requests/{number}",
                "draft": False,
                "author": self._user("gitlab"),
                "created_at": now,
                "updated_at": now,
            }
        # As real Gitea answers: unset pointers and lists are null, not absent.
        return {
            "id": 700 + number,
            "number": number,
            "state": state,
            "title": title,
            "body": "",
            "html_url": f"https://gitea.example.test/{repo}/pulls/{number}",
            "url": f"https://gitea.example.test/{repo}/pulls/{number}",
            "diff_url": f"https://gitea.example.test/{repo}/pulls/{number}.diff",
            "patch_url": f"https://gitea.example.test/{repo}/pulls/{number}.patch",
            "user": self._user("gitea"),
            "labels": [],
            "milestone": None,
            "assignee": None,
            "assignees": None,
            "requested_reviewers": None,
            "requested_reviewers_teams": None,
            "head": {"label": head_ref, "ref": head_ref, "sha": head_sha, "repo_id": 1},
            "base": {"label": base_ref, "ref": base_ref, "sha": base_sha, "repo_id": 1},
            "merge_base": base_sha,
            "mergeable": True,
            "merged": False,
            "merged_at": None,
            "merged_by": None,
            "merge_commit_sha": None,
            "closed_at": None,
            "due_date": None,
            "draft": False,
            "is_locked": False,
            "comments": 0,
            "created_at": now,
            "updated_at": now,
        }


def _fresh_github_pull(example: dict[str, Any]) -> dict[str, Any]:
    """GitHub's example pull request made a fresh, unreviewed, unmerged one.

    (The published example also lists a requested team without the ``type`` its own schema
    requires; a fresh pull request has no requested teams, so that goes away too.)
    """
    example.update(
        active_lock_reason=None,
        assignee=None,
        assignees=[],
        auto_merge=None,
        body=None,
        closed_at=None,
        labels=[],
        locked=False,
        merge_commit_sha=None,
        merged_at=None,
        milestone=None,
        requested_reviewers=[],
        requested_teams=[],
    )
    for key in ("merged", "mergeable", "rebaseable", "merged_by"):
        if key in example:
            example[key] = {"merged": False, "merged_by": None}.get(key)
    return example


def _paginate(provider: Provider, items: list[Any], query: dict[str, list[str]], url: str) -> _Reply:
    """One page of ``items`` with the forge's paging headers (only the next-page hints)."""
    size_param = "limit" if provider == "gitea" else "per_page"
    page = max(1, int((query.get("page") or ["1"])[0]))
    size = int((query.get(size_param) or ["30" if provider == "github" else "20"])[0]) or 30
    chunk = items[(page - 1) * size : page * size]
    headers: dict[str, str] = {}
    has_next = page * size < len(items)
    if provider == "gitlab":
        headers.update({"X-Total": str(len(items)), "X-Page": str(page), "X-Per-Page": str(size)})
        headers["X-Next-Page"] = str(page + 1) if has_next else ""
    if provider in ("gitea", "gitlab"):
        headers["X-Total-Count"] = str(len(items))
    if has_next:
        others = [(k, v) for k, vs in query.items() if k not in ("page", size_param) for v in vs]
        next_query = urlencode([*others, ("page", page + 1), (size_param, size)])
        headers["Link"] = f'<{url}?{next_query}>; rel="next"'
    return _Reply(200, chunk, headers)


def _parse_body(body: bytes, content_type: str) -> Any:
    if not body:
        return None
    if "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    try:
        return json.loads(body)
    except ValueError:
        return None


class _ForgeHandler(BaseHTTPRequestHandler):
    server: _ForgeHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.owner.handle(self)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def send_json(self, status: int, body: Any, headers: Mapping[str, str]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _ForgeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets bursts of parallel clients; real servers queue more.
    request_queue_size = 128
    owner: ForgeServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self._connections_lock:
            self._connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut the kept-alive connections too: a stopped forge answers nothing, old clients included."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
