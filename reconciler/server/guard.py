"""Who may call what on the HTTP server: an ASGI middleware in front of every route.

Rules by kind of path (see `kind`):

- `/healthz`, `/readyz`, `/metrics` (probes, Prometheus) and `/webhooks/*` (each verified by its
  forge's signature, safety rule 5) keep their own rules and pass untouched.
- Everything else (the JSON API under `/api/`, the HTML pages commit statuses link to) is for
  browsers and the CLI, and is refused with 403 when the request's `Host` is a name this server
  does not go by (DNS rebinding: a page of `evil.example` whose name resolves to 127.0.0.1), or
  when a browser says the request comes from another site (`Origin` not this server's,
  `Sec-Fetch-Site: cross-site`: cross-site request forgery).
- With `server.token_file` / `server.token_env` set, every `/api/*` call and every mutating call
  needs `Authorization: Bearer <token>`, compared in constant time; none or a wrong one is a 401
  with a JSON error. Without a token, a server bound to a loopback address trusts its machine;
  one bound elsewhere refuses mutating calls and run logs (403), and the daemon says so once at
  start (`Access.from_config`).

The decision is a pure function of the request's method, path and headers (`decide`), so it is
tested without a server; the middleware only answers what it decides. It is plain ASGI, so it
wraps any ASGI app (Starlette today, FastAPI later) the same way.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.config import ServerConfig
from reconciler.secrets import read_secret

log = logging.getLogger("reconciler.server")

PathKind = Literal["open", "webhook", "api", "page"]
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


def kind(path: str) -> PathKind:
    if path in OPEN_PATHS:
        return "open"
    if path.startswith("/webhooks/"):
        return "webhook"
    if path == "/api" or path.startswith("/api/"):
        return "api"
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

    @classmethod
    def from_config(cls, server: ServerConfig) -> Access:
        """Read the token (through `reconciler.secrets`: refused if others can read its file)."""
        token = read_secret(server.token_file, server.token_env, "server token")
        access = cls(token, server.host, server.public_url, frozenset(h.lower() for h in server.allowed_hosts))
        if token is None and not access.loopback:
            log.warning(
                "the HTTP server listens on %s without server.token_file or server.token_env: "
                "stopping runs, triggering syncs and reading run logs are refused (403) until one is set",
                server.host,
            )
        return access

    @property
    def loopback(self) -> bool:
        return is_loopback(self.bind_host)

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
        if self.token is None or not header:
            return False
        scheme, _, presented = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented.strip().encode(), self.token.encode())


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str
    headers: Mapping[str, str] = field(default_factory=dict)


def decide(access: Access, method: str, path: str, headers: Mapping[str, str], scheme: str = "http") -> Refusal | None:
    """None when the request may go on; otherwise the answer. `headers` keys are lower case."""
    what = kind(path)
    if what in ("open", "webhook"):
        return None
    host_header = headers.get("host", "")
    if not access.host_allowed(host_name(host_header)):
        return Refusal(403, "this server does not answer to that Host name")
    origin = headers.get("origin")
    if origin is not None:
        same = f"{scheme}://{host_header.strip()}".lower()
        if origin.strip().lower() not in {same, access.public_origin}:
            return Refusal(403, "cross-origin requests are refused")
    if headers.get("sec-fetch-site", "").lower() == "cross-site":
        return Refusal(403, "cross-site requests are refused")
    mutating = method.upper() not in SAFE_METHODS
    if access.token is not None:
        if (what == "api" or mutating) and not access.bearer_ok(headers.get("authorization")):
            return Refusal(401, "missing or invalid bearer token", {"WWW-Authenticate": 'Bearer realm="reconciler"'})
        return None
    if not access.loopback and (mutating or reads_logs(path)):
        return Refusal(403, "set server.token_file or server.token_env to allow this on a non-loopback address")
    return None


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
        refusal = decide(self.access, scope["method"], scope["path"], headers, scope.get("scheme", "http"))
        if refusal is not None:
            response = JSONResponse({"error": refusal.error}, status_code=refusal.status, headers=dict(refusal.headers))
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            log.info("client disconnected before its request was read: %s %s", scope["method"], _client(scope))


def _client(scope: Scope) -> str:
    client: Any = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown client"


__all__ = ["Access", "Guard", "Refusal", "decide", "host_name", "is_loopback", "kind"]
