"""Threats: holding the daemon's HTTP server or exhausting its memory.

Slowloris (connections that send their request a byte at a time, or never finish it), a flood of
connections, a client that walks away in the middle of its request, and log reads of a run
whose log is hundreds of megabytes: each against the daemon as a process, with its memory
measured from /proc while it happens.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.server import Limits
from tests.e2e.harness import job, local_run_dir
from tests.infra.git_server import GitRepoFactory

LIMITS = Limits()  # the daemon's defaults
LOG_BYTES = 300 * 1024 * 1024
MiB = 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@contextmanager
def peak_rss(pid: int) -> Iterator[Callable[[], int]]:
    """Sample the process's resident memory every 10 ms; yields a function giving the peak."""
    samples = [rss(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            samples.append(rss(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: max(samples)
    finally:
        done.set()
        thread.join()


def read_until_closed(sock: socket.socket, deadline: float) -> tuple[bytes, float | None]:
    """What the server sent and when it closed (None: still open at `deadline`)."""
    sock.settimeout(0.2)
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, time.monotonic()
        if not chunk:
            return data, time.monotonic()
        data += chunk
    return data, None


CHATTY = f"yes 'a line of a very chatty training job, epoch 17, loss 0.0042' | head -c {LOG_BYTES}; echo; echo END"


@pytest.fixture
def daemon(daemons: Any, git_repo_factory: GitRepoFactory, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """A daemon with a webhook endpoint and one job (`@pytest.mark.parametrize("daemon", [cmd], indirect=True)`)."""
    command = getattr(request, "param", "echo hello")
    git = git_repo_factory.create("models", {"ops/chatty.yaml": job("chatty", command)})
    secret = tmp_path / "webhook-secret"
    secret.write_text("webhook-secret\n")
    secret.chmod(0o600)
    repo = {
        "name": "models",
        "url": git.file_url,
        "branch": "main",
        "interval": 1,
        "forge": {"provider": "github", "project": "acme/models", "webhook_secret_file": str(secret)},
    }
    return daemons([repo], f"sqlite:///{tmp_path / 'reconciler.db'}").start()


@pytest.mark.slow
def test_slow_and_endless_requests_are_closed_and_connections_capped(daemon: Any) -> None:
    assert daemon.proc is not None
    pid = daemon.proc.pid
    before = rss(pid)
    started = time.monotonic()
    # Slowloris: unfinished headers, a body that never comes, and a flood beyond the cap.
    slow_headers = socket.create_connection(("127.0.0.1", daemon.port))
    slow_headers.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
    slow_body = socket.create_connection(("127.0.0.1", daemon.port))
    slow_body.sendall(
        b"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4000\r\n\r\n{"
    )
    flood = [socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(LIMITS.max_connections + 20)]
    try:
        refused = 0
        for sock in flood:
            data, closed = read_until_closed(sock, time.monotonic() + 0.5)
            if closed is not None and data.startswith(b"HTTP/1.1 503 "):
                refused += 1
        assert refused >= 20, refused  # over the cap: 503 at once, nothing held
        grown = rss(pid) - before
        assert grown < 32 * MiB, f"{grown / MiB:.1f} MiB for {len(flood)} idle connections"

        deadline = started + 30  # the bound for a half-sent request
        headers_answer, headers_closed = read_until_closed(slow_headers, deadline)
        body_answer, body_closed = read_until_closed(slow_body, deadline)
        assert headers_closed is not None and headers_answer.startswith(b"HTTP/1.1 408 "), headers_answer
        assert body_closed is not None and body_answer.startswith(b"HTTP/1.1 408 "), body_answer
        print(
            f"\nheaders closed after {headers_closed - started:.1f}s, body after {body_closed - started:.1f}s; "
            f"{refused} of {len(flood)} flood connections refused; RSS +{grown / MiB:.1f} MiB"
        )
    finally:
        for sock in (slow_headers, slow_body, *flood):
            sock.close()
    # Everything let go: the daemon answers again, and it never printed a traceback for any of it.
    daemon.wait(lambda: (answer := daemon.get("/healthz")) is not None and answer[0] == 200, "/healthz again")
    log = daemon.log_text()
    assert "Traceback" not in log and "Exception in ASGI" not in log, daemon.log_tail()


def test_a_client_that_walks_away_mid_body_is_one_short_log_line(daemon: Any) -> None:
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
            sock.sendall(
                b"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 5000\r\n\r\n" + b'{"zen": "' + b"x" * 3000
            )
    daemon.wait(
        lambda: daemon.log_text().count("client disconnected before its request was read") == 3,
        "three short disconnect lines",
    )
    lines = [line for line in daemon.log_text().splitlines() if "client disconnected" in line]
    assert all(len(line) < 200 for line in lines), lines
    assert "Traceback" not in daemon.log_text()


def _get(port: int, path: str) -> tuple[int, int, bytes]:
    """(status, bytes read, last 100 bytes), reading the body in blocks as a client would."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        total, tail = 0, b""
        while block := response.read(1 << 20):
            total += len(block)
            tail = (tail + block)[-100:]
        return response.status, total, tail
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.parametrize("daemon", [CHATTY], indirect=True)
def test_a_300_mb_log_costs_kilobytes_to_tail_and_a_block_to_stream(daemon: Any) -> None:
    run = daemon.wait_run("#chatty", lambda r: r["status"] == "succeeded", "the chatty job", timeout=120)
    name = run["name"]
    assert daemon.proc is not None
    pid = daemon.proc.pid
    log_file = local_run_dir(daemon.data_dir, name) / "stdout.log"
    assert log_file.stat().st_size > LOG_BYTES
    daemon.get("/api/runs?limit=1")  # warm up: the first request imports and allocates a little
    before = rss(pid)
    results: list[tuple[int, int, bytes]] = []
    with peak_rss(pid) as peak:
        threads = [
            threading.Thread(target=lambda: results.append(_get(daemon.port, f"/api/runs/{name}/logs?tail=1")))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        tails_peak = peak() - before
    assert [(status, tail) for status, _, tail in results] == [(200, b"END\n")] * 3
    with peak_rss(pid) as peak:
        took = time.monotonic()
        status, total, tail = _get(daemon.port, f"/api/runs/{name}/logs")
        took = time.monotonic() - took
        stream_peak = peak() - before
    assert status == 200 and total == log_file.stat().st_size and tail.endswith(b"\nEND\n")
    print(
        f"\n3 tails of a {LOG_BYTES // MiB} MiB log: RSS +{tails_peak / MiB:.1f} MiB; the whole log streamed in "
        f"{took:.1f}s ({total / MiB / took:.0f} MiB/s): RSS +{stream_peak / MiB:.1f} MiB"
    )
    assert tails_peak < 16 * MiB
    assert stream_peak < 48 * MiB
    # A reader that walks away in the middle of the stream: the daemon stops, quietly.
    for _ in range(3):
        connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
        connection.request("GET", f"/api/runs/{name}/logs")
        assert len(connection.getresponse().read(1 << 20)) == 1 << 20
        connection.close()
    assert daemon.get("/healthz") == (200, "ok\n")
    assert "Traceback" not in daemon.log_text() and "Exception in ASGI" not in daemon.log_text(), daemon.log_tail()
    assert os.path.exists(log_file)
