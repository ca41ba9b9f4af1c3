"""A small JSON client over the official `kubernetes` ApiClient's connection pool and auth.

The generated API classes know neither server-side apply nor custom resources, and the dynamic
client does discovery on every start; the backend needs four verbs on a dozen known paths. So
requests go straight through the ApiClient's pool (TLS, client certs, tokens from the
kubeconfig are reused), and every call is counted by verb, which is how the benchmarks and tests
prove that an idle reconciler makes no LIST calls.

Every call is bounded: a connect timeout, and one deadline (`timeout`) for the call with its
retries, so a frozen API server holds a caller for `timeout` seconds at most, never for a pile of
nested retries. urllib3's own retries are off (it would retry each attempt again, and log a
`Retrying` warning for each); this client retries connection errors, 429 and 5xx itself with the
one backoff (`reconciler.backoff`), and logs one line per call that failed for good, saying what
it waited for.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes.client import ApiClient

from reconciler.backends.base import TransientBackendError
from reconciler.backoff import Backoff

APPLY = "application/apply-patch+yaml"  # JSON is YAML, so the body is plain JSON
MERGE = "application/merge-patch+json"
RETRIES = 3
POOL_SIZE = 32
CONNECT_TIMEOUT = 5.0  # seconds to open a connection (a TCP handshake on a reachable server is fast)
_RETRY_STATUS = {429, 500, 502, 503, 504}
_CALL_BACKOFF = Backoff(initial=0.2, cap=2.0)

log = logging.getLogger(__name__)


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.reason = str(body.get("reason") or "")
        super().__init__(f"{status} {self.reason}: {body.get('message') or ''}".strip())

    @property
    def message(self) -> str:
        return str(self.body.get("message") or self)


class Client:
    def __init__(
        self,
        api_client: ApiClient,
        timeout: float = 30.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        pool_size: int = POOL_SIZE,
    ) -> None:
        """`timeout`: seconds one call may take, its retries included; `connect_timeout`: per
        connection attempt; `pool_size`: connections kept open (at least `POOL_SIZE`)."""
        self.api_client = api_client
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        # One long-lived connection per watch (a dozen kinds) plus the writes: the default pool of
        # ten would drop connections and pay a TLS handshake on most requests.
        pool = api_client.rest_client.pool_manager
        size = max(POOL_SIZE, pool_size)
        if (pool.connection_pool_kw.get("maxsize") or 1) < size:
            pool.connection_pool_kw["maxsize"] = size
            pool.clear()

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    def _count(self, verb: str) -> None:
        with self._lock:
            self.calls[verb] += 1

    def _prepare(
        self, method: str, path: str, query: dict[str, Any] | None, content_type: str | None
    ) -> tuple[str, dict[str, str]]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        params = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items()]
        _, url, headers, _, _ = self.api_client.param_serialize(
            method, path, query_params=params or None, header_params=headers, auth_settings=["BearerToken"]
        )
        return url, headers

    def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | None = None,
        retries: int = RETRIES,
        quiet: bool = False,
    ) -> dict[str, Any]:
        """One call, retried with capped backoff on connection errors, 429 and 5xx, within
        `timeout` seconds (the client's by default) in all. A call that fails for good raises
        `TransientBackendError` (no answer) or `ApiError` (an error status) and is logged once,
        unless `quiet` (the caller reports it)."""
        payload = None if body is None else json.dumps(body).encode()
        if payload is not None and content_type is None:
            content_type = "application/json"
        url, headers = self._prepare(method, path, query, content_type)
        budget = self.timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + budget
        attempt = 0
        while True:
            attempt += 1
            self._count(verb)
            left = deadline - time.monotonic()
            try:
                response = self.api_client.rest_client.pool_manager.request(
                    method,
                    url,
                    body=payload,
                    headers=headers,
                    timeout=urllib3.Timeout(connect=max(0.1, min(self.connect_timeout, left)), read=max(0.1, left)),
                    retries=False,
                )
            except urllib3.exceptions.HTTPError as e:
                problem = _describe(e, self.connect_timeout, left)
                failure: Exception = TransientBackendError(f"{method} {path}: {problem}")
                failure.__cause__ = e
            else:
                data = _json(response.data)
                if 200 <= response.status < 300:
                    return data
                failure = ApiError(response.status, data)
                if response.status not in _RETRY_STATUS:
                    raise failure  # an answer, not an outage: the caller decides what it means
                problem = f"answered {failure}"
            pause = _CALL_BACKOFF.delay(attempt)
            if attempt >= retries or time.monotonic() + pause >= deadline:
                if not quiet:
                    log.warning(
                        "%s %s on the API server %s failed after %d attempt(s) in %.1fs: %s",
                        method,
                        path,
                        self.server,
                        attempt,
                        time.monotonic() - started,
                        problem,
                    )
                raise failure
            log.debug("%s %s: %s; attempt %d in %.1fs", method, path, problem, attempt + 1, pause)
            time.sleep(pause)

    def text(self, path: str, query: dict[str, Any]) -> str:
        """A GET whose answer is plain text (pod logs)."""
        url, headers = self._prepare("GET", path, query, None)
        headers["Accept"] = "*/*"
        self._count("LOGS")
        try:
            response = self.api_client.rest_client.pool_manager.request(
                "GET",
                url,
                headers=headers,
                timeout=urllib3.Timeout(connect=self.connect_timeout, read=self.timeout),
                retries=False,
            )
        except urllib3.exceptions.HTTPError as e:
            raise TransientBackendError(f"GET {path}: {_describe(e, self.connect_timeout, self.timeout)}") from e
        if response.status != 200:
            raise ApiError(response.status, _json(response.data))
        return str(response.data.decode(errors="replace"))

    def watch(self, path: str, query: dict[str, Any], holder: list[Any]) -> Iterator[dict[str, Any]]:
        """Watch events, one dict per line. The open response is put in `holder` so another thread
        can shut it down; the server ends the stream after `timeoutSeconds`."""
        self._count("WATCH")
        url, headers = self._prepare("GET", path, {**query, "watch": True}, None)
        read_timeout = float(query.get("timeoutSeconds", 300)) + 30
        response = self.api_client.rest_client.pool_manager.request(
            "GET",
            url,
            headers=headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=self.connect_timeout, read=read_timeout),
            retries=False,
        )
        holder[:] = [response]
        try:
            if response.status != 200:
                raise ApiError(response.status, _json(response.read()))
            buffer = b""
            for chunk in response.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            holder.clear()
            response.release_conn()


def _describe(error: urllib3.exceptions.HTTPError, connect_timeout: float, read_timeout: float) -> str:
    """What a failed attempt waited for, in words."""
    if isinstance(error, urllib3.exceptions.NewConnectionError):  # a subclass of the timeout, checked first
        return f"cannot connect ({error.__context__ or error})"
    if isinstance(error, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection within {connect_timeout:.1f}s"
    if isinstance(error, urllib3.exceptions.ReadTimeoutError):
        return f"no answer within {max(0.0, read_timeout):.1f}s (read timeout)"
    return f"{type(error).__name__}: {error}"


def _json(data: bytes | None) -> dict[str, Any]:
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {"message": data.decode(errors="replace")[:500]}
    return value if isinstance(value, dict) else {"value": value}
