"""Who may call what: the guard's decision as a pure function of method, path and headers."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.runtokens import RunTokens
from reconciler.server.guard import SESSION_COOKIE, Access, decide, host_name, kind, seen

TOKEN = "t0ken-0f-the-api"
LOCAL = Access(bind_host="127.0.0.1")
WITH_TOKEN = Access(token=TOKEN, bind_host="127.0.0.1", public_url="https://reconciler.example.com")
EXPOSED = Access(bind_host="0.0.0.0", public_url="https://reconciler.example.com")
OPEN_PAGES = Access(bind_host="0.0.0.0", anonymous_read=True)
PRIVATE = Access(token=TOKEN, bind_host="127.0.0.1", anonymous_read=False)
RUN_TOKENS = RunTokens("k" * 64)
REPORTING = Access(token=TOKEN, bind_host="0.0.0.0", run_tokens=RUN_TOKENS)


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
        # No token on a non-loopback address: no mutation, no logs; reading runs is allowed;
        # the pages only with server.anonymous_read (off by default off loopback).
        (EXPOSED, "POST", "/api/runs/r/stop", {}, 403),
        (EXPOSED, "POST", "/api/repos/x/sync", {}, 403),
        (EXPOSED, "GET", "/api/runs/r/logs", {}, 403),
        (EXPOSED, "GET", "/api/runs", {}, 200),
        (EXPOSED, "GET", "/runs/r", {}, 403),
        (EXPOSED, "GET", "/", {}, 403),
        (EXPOSED, "GET", "/static/vendor/uPlot.iife.min.js", {}, 200),
        (OPEN_PAGES, "GET", "/runs/r", {}, 200),
        (OPEN_PAGES, "GET", "/api/runs/r/logs", {}, 403),
        # A token and pages not anonymous: a browser is sent to sign in; the API says 401.
        (PRIVATE, "GET", "/runs/r", {}, 303),
        (PRIVATE, "GET", "/runs/r", {"authorization": f"Bearer {TOKEN}"}, 200),
        (PRIVATE, "GET", "/login", {}, 200),
        (PRIVATE, "POST", "/login", {}, 200),
        (PRIVATE, "GET", "/api/runs", {}, 401),
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


def test_a_session_cookie_signs_a_browser_in_for_reading_only() -> None:
    value = PRIVATE.session_cookie(now=1000.0)
    assert value is not None
    signed = {"host": "127.0.0.1:8080", "cookie": f"theme=dark; {SESSION_COOKIE}={value}"}
    assert decide(PRIVATE, "GET", "/runs/r", signed, now=1001.0) is None
    assert decide(PRIVATE, "GET", "/api/runs/r/logs", signed, now=1001.0) is None
    assert seen(PRIVATE, "GET", signed, 1001.0).logs
    # Never for a mutation (a cookie rides along with any request the browser makes).
    refused = decide(PRIVATE, "POST", "/api/runs/r/stop", signed, now=1001.0)
    assert refused is not None and refused.status == 401
    # Expired, tampered, or made with another token: a stranger.
    late = decide(PRIVATE, "GET", "/api/runs", signed, now=1000.0 + 13 * 3600)
    assert late is not None and late.status == 401
    expires, _, mac = value.partition(".")
    for forged in (f"{int(expires) + 99999}.{mac}", f"{expires}.{'0' * len(mac)}", "", "x.y"):
        headers = {**signed, "cookie": f"{SESSION_COOKIE}={forged}"}
        answer_ = decide(PRIVATE, "GET", "/api/runs", headers, now=1001.0)
        assert answer_ is not None and answer_.status == 401, forged
    other = Access(token="another-token-entirely", bind_host="127.0.0.1").session_cookie(now=1000.0)
    headers = {**signed, "cookie": f"{SESSION_COOKIE}={other}"}
    assert decide(PRIVATE, "GET", "/api/runs", headers, now=1001.0) is not None
    # No token configured: there is nothing to sign in with.
    assert LOCAL.session_cookie(now=1000.0) is None


def test_a_run_reports_with_its_own_token_only_for_itself() -> None:
    own = {"host": "reconciler.svc.cluster.local", "authorization": f"Bearer {RUN_TOKENS.token('train-1')}"}
    assert kind("/api/runs/train-1/metrics", "POST") == "report"
    assert kind("/api/runs/train-1/outputs", "GET") == "api"  # reading outputs is the API's
    assert decide(REPORTING, "POST", "/api/runs/train-1/metrics", own) is None  # any Host: the token decides
    assert decide(REPORTING, "POST", "/api/runs/train-1/outputs", own) is None
    for path in ("/api/runs/train-2/metrics", "/api/runs/train-1/stop", "/api/repos/x/sync"):
        refused = decide(REPORTING, "POST", path, own)
        assert refused is not None and refused.status in (401, 403), path
    # Reading with a run token is not reading with the API token.
    refused = decide(REPORTING, "GET", "/api/runs/train-1/outputs", {**own, "host": "127.0.0.1"})
    assert refused is not None and refused.status == 401
    # No token, a wrong one, a browser on another site: refused.
    for headers in (
        {"host": "x"},
        {"host": "x", "authorization": "Bearer prt_nope"},
        {**own, "origin": "https://evil.test"},
    ):
        refused = decide(REPORTING, "POST", "/api/runs/train-1/metrics", headers)
        assert refused is not None and refused.status in (401, 403), headers
    # The API token may report for any run.
    assert (
        decide(REPORTING, "POST", "/api/runs/train-2/metrics", {"host": "x", "authorization": f"Bearer {TOKEN}"})
        is None
    )
    # Without run tokens (no daemon hands them out), only the API token.
    refused = decide(WITH_TOKEN, "POST", "/api/runs/train-1/metrics", own)
    assert refused is not None and refused.status == 401
