"""Who may call what: the guard's decision as a pure function of method, path and headers."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.server.guard import Access, decide, host_name, kind

TOKEN = "t0ken-0f-the-api"
LOCAL = Access(bind_host="127.0.0.1")
WITH_TOKEN = Access(token=TOKEN, bind_host="127.0.0.1", public_url="https://reconciler.example.com")
EXPOSED = Access(bind_host="0.0.0.0", public_url="https://reconciler.example.com")


def answer(access: Access, method: str, path: str, **headers: str) -> int:
    headers = {"host": "127.0.0.1:8080", **{k.replace("_", "-"): v for k, v in headers.items()}}
    refusal = decide(access, method, path, headers)
    return 200 if refusal is None else refusal.status


def test_kinds_of_path() -> None:
    assert [kind(p) for p in ("/healthz", "/readyz", "/metrics", "/webhooks/github", "/api/runs", "/runs/x")] == [
        "open", "open", "open", "webhook", "api", "page",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("header", "name"),
    [("127.0.0.1:8080", "127.0.0.1"), ("Localhost", "localhost"), ("[::1]:80", "::1"), ("evil.test", "evil.test")],
)
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/webhooks/gitea"])
def test_probes_and_webhooks_keep_their_own_rules(path: str) -> None:
    for access in (LOCAL, WITH_TOKEN, EXPOSED):
        assert answer(access, "POST", path, host="evil.test", origin="https://evil.test") == 200


@pytest.mark.parametrize(
    ("access", "method", "path", "headers", "status"),
    [
        # No token, loopback: the machine is trusted.
        (LOCAL, "GET", "/api/runs", {}, 200),
        (LOCAL, "POST", "/api/runs/r/stop", {}, 200),
        (LOCAL, "GET", "/api/runs/r/logs", {}, 200),
        # With a token: every /api call and every mutation needs it; pages do not.
        (WITH_TOKEN, "GET", "/api/runs", {}, 401),
        (WITH_TOKEN, "GET", "/api/runs/r/logs", {"authorization": "Bearer wrong"}, 401),
        (WITH_TOKEN, "POST", "/api/runs/r/stop", {"authorization": f"Basic {TOKEN}"}, 401),
        (WITH_TOKEN, "POST", "/api/runs/r/stop", {"authorization": f"Bearer {TOKEN}x"}, 401),
        (WITH_TOKEN, "POST", "/api/runs/r/stop", {"authorization": f"Bearer {TOKEN}"}, 200),
        (WITH_TOKEN, "POST", "/api/repos/x/sync", {"authorization": f"bearer  {TOKEN} "}, 200),
        (WITH_TOKEN, "GET", "/runs/r", {}, 200),
        (WITH_TOKEN, "POST", "/runs/r", {}, 401),
        # No token on a non-loopback address: no mutation, no logs; reading runs is allowed.
        (EXPOSED, "POST", "/api/runs/r/stop", {}, 403),
        (EXPOSED, "POST", "/api/repos/x/sync", {}, 403),
        (EXPOSED, "GET", "/api/runs/r/logs", {}, 403),
        (EXPOSED, "GET", "/api/runs", {}, 200),
        (EXPOSED, "GET", "/runs/r", {}, 200),
    ],
)
def test_authentication_matrix(access: Access, method: str, path: str, headers: dict[str, str], status: int) -> None:
    assert answer(access, method, path, **headers) == status


def test_a_refusal_says_why_and_how_in_json_terms() -> None:
    refusal = decide(WITH_TOKEN, "GET", "/api/runs", {"host": "localhost"})
    assert refusal is not None and refusal.status == 401
    assert refusal.headers["WWW-Authenticate"].startswith("Bearer")
    exposed = decide(EXPOSED, "POST", "/api/runs/r/stop", {"host": "10.0.0.7:8080"})
    assert exposed is not None and "server.token_file" in exposed.error


@pytest.mark.parametrize(
    ("access", "host", "status"),
    [
        (LOCAL, "127.0.0.1:8080", 200),
        (LOCAL, "localhost:8080", 200),
        (LOCAL, "[::1]:8080", 200),
        (LOCAL, "rebind.evil.test:8080", 403),  # DNS rebinding: a name that resolves to us
        (LOCAL, "", 403),
        (LOCAL, "10.1.2.3", 403),  # bound to loopback: no other address reaches us
        (WITH_TOKEN, "reconciler.example.com", 200),  # public_url's host
        (WITH_TOKEN, "reconciler.example.com.evil.test", 403),
        (EXPOSED, "10.1.2.3:8080", 200),  # listening everywhere: any address literal is ours
        (EXPOSED, "reconciler.example.com", 200),
        (EXPOSED, "rebind.evil.test", 403),
        (Access(bind_host="0.0.0.0", allowed_hosts=frozenset({"svc.cluster.local"})), "svc.cluster.local:80", 200),
    ],
)
def test_host_names_we_go_by(access: Access, host: str, status: int) -> None:
    assert answer(access, "GET", "/api/runs", host=host, authorization=f"Bearer {TOKEN}") == status


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"origin": "http://127.0.0.1:8080"}, 200),  # same origin
        ({"origin": "https://reconciler.example.com"}, 200),  # public_url
        ({"origin": "https://evil.test"}, 403),  # CSRF from a page elsewhere
        ({"origin": "null"}, 403),  # sandboxed frames, file:// pages
        ({"origin": "http://127.0.0.1:9999"}, 403),  # another local service
        ({"sec_fetch_site": "cross-site"}, 403),
        ({"sec_fetch_site": "same-origin"}, 200),
    ],
)
def test_browser_requests_from_other_sites(headers: dict[str, Any], status: int) -> None:
    assert answer(WITH_TOKEN, "POST", "/api/runs/r/stop", authorization=f"Bearer {TOKEN}", **headers) == status
    pages = Access(bind_host="127.0.0.1", public_url="https://reconciler.example.com")
    assert answer(pages, "GET", "/runs/r", **headers) == status
