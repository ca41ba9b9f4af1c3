"""Who may call what on the HTTP server: an ASGI middleware in front of every route.

Rules by kind of path (see `kind`):

- `/healthz`, `/readyz`, `/metrics` (probes, Prometheus) and `/webhooks/*` (each verified by its
  forge's signature, safety rule 5) keep their own rules and pass untouched.
- Everything else (the JSON API under `/api/`, the dashboard's pages, its static files, `/docs`)
  is for browsers and the CLI, and is refused with 403 when the request's `Host` is a name this
  server does not go by (DNS rebinding: a page of `evil.example` whose name resolves to
  127.0.0.1), or when a browser says the request comes from another site (`Origin` not this
  server's, `Sec-Fetch-Site: cross-site`: cross-site request forgery).
- With `server.token_file` / `server.token_env` set, every `/api/*` call and every mutating call
  needs `Authorization: Bearer <token>`, compared in constant time; none or a wrong one is a 401
  with a JSON error. A browser signs in once at `/login` with the token and gets a session cookie
  (HttpOnly, SameSite=Strict, an HMAC of the token and its expiry: no state on the server), good
  for reading only (GET), never for a mutation. Without a token, a server bound to a loopback
  address trusts its machine; one bound elsewhere refuses mutating calls and run logs (403), and
  the daemon says so once at start (`Access.from_config`).
- The dashboard's pages (never run logs) are readable by anyone who reaches the server only when
  `server.anonymous_read` is true (default: when bound to a loopback address); otherwise they
  need the token (a browser is sent to `/login`), or with no token configured they are refused.
- `POST /api/runs/<name>/metrics|outputs` is how a run reports: its own run token
  (`POLYAXON_RUN_TOKEN`, `reconciler.runtokens`) or the API token, nothing else, wherever the
  server listens. The `Host` check does not apply (a pod reaches the daemon by its Service's
  name); the token is what a rebinding page could never present.

The decision is a pure function of the request's method, path and headers (`decide`), so it is
tested without a server; the middleware only answers what it decides, and tells the app what
the caller may see (`Seen`, in the ASGI scope): pages show run logs only to those who may read
them. It is plain ASGI, so it wraps any ASGI app the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.config import ServerConfig
from reconciler.runtokens import RunTokens
from reconciler.secrets import read_secret

log = logging.getLogger("reconciler.server")

PathKind = Literal["open", "webhook", "api", "page", "asset", "login", "report"]
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
LOGIN_PATHS = frozenset({"/login", "/logout"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
REPORT_PATH = re.compile(r"^/api/runs/(?P<run>[^/]+)/(?:metrics|outputs)$")
SESSION_COOKIE = "reconciler_session"
SESSION_SECONDS = 12 * 3600
SCOPE_KEY = "reconciler.seen"
LOGGED = "reconciler.logged"  # set in the scope when the app logged its own failure


def kind(path: str, method: str = "GET") -> PathKind:
    if path in OPEN_PATHS:
        return "open"
    if path.startswith("/webhooks/"):
        return "webhook"
    if method.upper() == "POST" and REPORT_PATH.match(path):
        return "report"
    if path == "/api" or path.startswith("/api/"):
        return "api"
    if path.startswith("/static/") or path == "/favicon.ico":
        return "asset"
    if path in LOGIN_PATHS:
        return "login"
    return "page"


def reads_logs(path: str) -> bool:
    return path.startswith("/api/") and path.rstrip("/").endswith("/logs")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def host_name(header: str) -> str:
    """The host of a `Host` header value (`name`, `name:port`, `[v6]:port`), lower case."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@dataclass(frozen=True)
class Access:
    """What the guard needs to know: the token (None: none set) and the names this server goes by."""

    token: str | None = None
    bind_host: str = "127.0.0.1"
    public_url: str | None = None
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    anonymous_read: bool | None = None  # None: true on a loopback address
    run_tokens: RunTokens | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, server: ServerConfig, run_tokens: RunTokens | None = None) -> Access:
        """Read the token (through `reconciler.secrets`: refused if others can read its file)."""
        token = read_secret(server.token_file, server.token_env, "server token")
        access = cls(
            token,
            server.host,
            server.public_url,
            frozenset(h.lower() for h in server.allowed_hosts),
            server.anonymous_read,
            run_tokens,
        )
        if token is None and not access.loopback:
            log.warning(
                "the HTTP server listens on %s without server.token_file or server.token_env: "
                "stopping runs, triggering syncs and reading run logs are refused (403) until one is set",
                server.host,
            )
            if not access.pages_open:
                log.warning(
                    "the dashboard's pages are refused (403) until server.token_file or server.token_env "
                    "is set (then sign in at /login), or server.anonymous_read is true"
                )
        return access

    @property
    def loopback(self) -> bool:
        return is_loopback(self.bind_host)

    @property
    def pages_open(self) -> bool:
        """May anyone who reaches the server read the pages (server.anonymous_read)?"""
        return self.loopback if self.anonymous_read is None else self.anonymous_read

    def session_cookie(self, now: float, seconds: int = SESSION_SECONDS) -> str | None:
        """A session value for a browser that presented the token (None: no token configured)."""
        if self.token is None:
            return None
        expires = str(int(now) + seconds)
        return f"{expires}.{self._session_mac(expires)}"

    def session_ok(self, value: str | None, now: float) -> bool:
        if self.token is None or not value:
            return False
        expires, _, mac = value.partition(".")
        if not expires.isdigit() or len(expires) > 12 or int(expires) < now:
            return False
        return hmac.compare_digest(mac.encode(), self._session_mac(expires).encode())

    def _session_mac(self, expires: str) -> str:
        assert self.token is not None
        return hmac.new(self.token.encode(), f"dashboard-session:{expires}".encode(), hashlib.sha256).hexdigest()

    @property
    def public_origin(self) -> str | None:
        if not self.public_url:
            return None
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None

    def host_allowed(self, host: str) -> bool:
        """A name we go by: localhost, the bind address, public_url's host, `allowed_hosts`.

        IP literals are accepted when loopback, equal to the bind address, or when the server
        listens on every address; DNS rebinding needs a name, never a literal.
        """
        if not host:
            return False
        names = {"localhost", self.bind_host.lower(), *self.allowed_hosts}
        public = urlsplit(self.public_url).hostname if self.public_url else None
        if public:
            names.add(public.lower())
        if host in names:
            return True
        address = _ip(host)
        if address is None:
            return False
        bound = _ip(self.bind_host)
        return address.is_loopback or self.bind_host in WILDCARD_HOSTS or (bound is not None and address == bound)

    def bearer_ok(self, header: str | None) -> bool:
        presented = bearer(header)
        if self.token is None or presented is None:
            return False
        return hmac.compare_digest(presented.encode(), self.token.encode())

    def may_report(self, run: str, header: str | None) -> bool:
        """The run's own token, or the API token."""
        presented = bearer(header)
        if presented is None:
            return False
        if self.run_tokens is not None and self.run_tokens.valid(run, presented):
            return True
        return self.bearer_ok(header)


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, presented = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    return presented.strip()


def cookie(headers: Mapping[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


@dataclass(frozen=True)
class Seen:
    """What the guard found about the caller, for the app: signed in (token or session), and
    allowed to read run logs."""

    authenticated: bool
    logs: bool


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str
    headers: Mapping[str, str] = field(default_factory=dict)


_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="reconciler"'}


def seen(access: Access, method: str, headers: Mapping[str, str], now: float) -> Seen:
    """Who the caller is, as far as the rules care (see `decide`)."""
    signed = access.bearer_ok(headers.get("authorization")) or (
        method.upper() in SAFE_METHODS and access.session_ok(cookie(headers, SESSION_COOKIE), now)
    )
    logs = signed if access.token is not None else access.loopback
    return Seen(signed, logs)


def decide(
    access: Access,
    method: str,
    path: str,
    headers: Mapping[str, str],
    scheme: str = "http",
    now: float | None = None,
) -> Refusal | None:
    """None when the request may go on; otherwise the answer. `headers` keys are lower case."""
    what = kind(path, method)
    if what in ("open", "webhook"):
        return None
    host_header = headers.get("host", "")
    if what != "report" and not access.host_allowed(host_name(host_header)):
        return Refusal(403, "this server does not answer to that Host name")
    origin = headers.get("origin")
    if origin is not None:
        same = f"{scheme}://{host_header.strip()}".lower()
        if origin.strip().lower() not in {same, access.public_origin}:
            return Refusal(403, "cross-origin requests are refused")
    if headers.get("sec-fetch-site", "").lower() == "cross-site":
        return Refusal(403, "cross-site requests are refused")
    if what == "report":
        match = REPORT_PATH.match(path)
        assert match is not None
        if not access.may_report(match["run"], headers.get("authorization")):
            return Refusal(401, "a run reports with its own token (POLYAXON_RUN_TOKEN)", _UNAUTHORIZED)
        return None
    if what in ("asset", "login"):
        return None  # static files hold nothing secret; signing in is how one gets the cookie
    caller = seen(access, method, headers, time.time() if now is None else now)
    mutating = method.upper() not in SAFE_METHODS
    if access.token is not None:
        if mutating and not access.bearer_ok(headers.get("authorization")):
            return Refusal(401, "missing or invalid bearer token", _UNAUTHORIZED)
        if what == "api" and not caller.authenticated:
            return Refusal(401, "missing or invalid bearer token", _UNAUTHORIZED)
        if what == "page" and not caller.authenticated and not access.pages_open:
            return Refusal(303, "sign in with the API token", {"Location": _login_url(path)})
        return None
    if not access.loopback and (mutating or reads_logs(path)):
        return Refusal(403, "set server.token_file or server.token_env to allow this on a non-loopback address")
    if what == "page" and not access.pages_open:
        return Refusal(403, "the pages need server.token_file or server.token_env, or server.anonymous_read: true")
    return None


def _login_url(path: str) -> str:
    from urllib.parse import quote

    return "/login?next=" + quote(path, safe="/")


class Guard:
    """The ASGI middleware: answers `decide`'s refusals, and turns a client that went away in the
    middle of its request into one short log line instead of a traceback."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        now = time.time()
        refusal = decide(self.access, scope["method"], scope["path"], headers, scope.get("scheme", "http"), now)
        if refusal is not None:
            body = {"error": refusal.error, "detail": None}
            response = JSONResponse(body, status_code=refusal.status, headers=dict(refusal.headers))
            await response(scope, receive, send)
            return
        scope[SCOPE_KEY] = seen(self.access, scope["method"], headers, now)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            log.info("client disconnected before its request was read: %s %s", scope["method"], _client(scope))
        except Exception:
            # The app's own handler answered and logged it (`LOGGED`); anything else is logged here,
            # once, and answered if no answer was under way: never a traceback to the client.
            if not scope.get(LOGGED):
                log.exception("%s %s failed", scope["method"], scope["path"])
            if not started:
                body = {"error": "internal error (logged by the daemon)", "detail": None}
                await JSONResponse(body, status_code=500)(scope, receive, send)


def _client(scope: Scope) -> str:
    client: Any = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown client"


__all__ = [
    "LOGGED",
    "SCOPE_KEY",
    "SESSION_COOKIE",
    "Access",
    "Guard",
    "Refusal",
    "Seen",
    "decide",
    "host_name",
    "is_loopback",
    "kind",
    "seen",
]
