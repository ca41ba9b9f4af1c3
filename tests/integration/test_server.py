"""The HTTP server on a real socket: health, readiness and metrics, and its bounds."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from reconciler.metrics import Metrics
from reconciler.server import Check, HttpServer, Limits, build_app
from tests.infra.wait import wait_until


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_readiness_and_metrics() -> None:
    metrics = Metrics()
    state = {"db": None}
    server = HttpServer(build_app(metrics, [Check("database", lambda: state["db"])]), "127.0.0.1", 0)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert fetch(base + "/healthz") == (200, "ok\n")
        assert fetch(base + "/readyz")[0] == 200
        state["db"] = "connection refused"
        code, body = fetch(base + "/readyz")
        assert code == 503 and "connection refused" in body and "database" in body
        metrics.reconcile_total.labels(repo="examples", result="success").inc()
        code, body = fetch(base + "/metrics")
        assert code == 200
        assert 'reconciler_reconcile_total{repo="examples",result="success"} 1.0' in body
    finally:
        server.stop()


async def _echo(request: Request) -> Response:
    return PlainTextResponse(await request.body())


def _serve(limits: Limits) -> HttpServer:
    server = HttpServer(build_app(Metrics(), routes=[Route("/echo", _echo, methods=["POST"])]), "127.0.0.1", 0, limits)
    server.start()
    return server


def _read_all(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes (b"" read), or what came by `deadline`."""
    chunks = []
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("sent", "phase"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", "headers"),  # slowloris
        (b"", "headers"),  # connects, sends nothing
        (b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{", "body"),
    ],
)
def test_a_half_sent_request_is_answered_408_and_closed_at_its_deadline(sent: bytes, phase: str) -> None:
    limits = Limits(header_timeout=0.5, body_timeout=1.0)
    server = _serve(limits)
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            started = time.monotonic()
            sock.sendall(sent)
            answer = _read_all(sock, started + 10)
            took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        expected = limits.body_timeout if phase == "body" else limits.header_timeout
        assert expected <= took < expected + 3, took
        assert fetch(f"http://127.0.0.1:{server.port}/healthz") == (200, "ok\n")  # the server is fine
    finally:
        server.stop()


def test_a_kept_alive_connection_gets_a_fresh_header_deadline_per_request() -> None:
    server = _serve(Limits(header_timeout=0.5, body_timeout=1.0, keep_alive=5.0))
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nfirst")
            first = b""
            while not first.endswith(b"first"):
                first += sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ")
            started = time.monotonic()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
            answer = _read_all(sock, started + 10)
            assert answer.startswith(b"HTTP/1.1 408 ") and time.monotonic() - started < 3
    finally:
        server.stop()


def test_connections_over_the_cap_are_refused_and_the_rest_served() -> None:
    server = _serve(Limits(header_timeout=5.0, max_connections=4))
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as extra:
            answer = _read_all(extra, time.monotonic() + 5)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many connections" in answer
        held.pop().close()

        def served() -> bool:
            try:
                return fetch(f"http://127.0.0.1:{server.port}/healthz")[0] == 200
            except OSError:
                return False

        wait_until(served, timeout=10, what="a connection slot freed")
    finally:
        for sock in held:
            sock.close()
        server.stop()
