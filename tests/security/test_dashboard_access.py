"""Threats: the dashboard shows what it should not to a stranger (run logs, or pages at all when
the operator said no), a sign-in form is an open door (a guessable cookie, an open redirect, a
session that stops runs), a run's token reports for another run or outlives its run.

The daemon as a process, over real HTTP, with the headers and cookies an attacker controls."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from reconciler.runtokens import RunTokens
from tests.e2e.harness import job
from tests.infra.git_server import GitRepoFactory

from .conftest import secret_file

TOKEN = "dashboard-api-token-for-the-tests"


def call(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(method, path, body=body, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()


def daemon_with(daemons: Any, git_repo_factory: GitRepoFactory, tmp_path: Path, server: dict[str, Any]) -> Any:
    git = git_repo_factory.create(
        "models", {"ops/long.yaml": job("long", "echo secret-looking-output; exec sleep 600")}
    )
    token_file = secret_file(tmp_path / "api-token", TOKEN)
    daemon = daemons(
        [{"name": "models", "url": git.file_url, "branch": "main", "interval": 1}],
        f"sqlite:///{tmp_path / 'reconciler.db'}",
        extra={"server": {"token_file": str(token_file), **server}},
        token=TOKEN,
    ).start()
    daemon.run = daemon.wait_run("#long", lambda r: r["status"] == "running", "the long job to run")
    return daemon


def test_private_pages_send_strangers_to_sign_in_and_a_session_only_reads(
    daemons: Any, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    daemon = daemon_with(daemons, git_repo_factory, tmp_path, {"anonymous_read": False})
    run = daemon.run["name"]
    port = daemon.port
    # A stranger: every page sends them to sign in (and comes back to where they were going).
    for path in ("/", f"/runs/{run}", "/schedules", "/repos/models/commits"):
        status, headers, _ = call(port, "GET", path)
        assert status == 303 and headers["location"].startswith("/login?next="), (path, status, headers)
    assert call(port, "GET", "/static/dashboard.css")[0] == 200  # nothing secret in the assets
    assert call(port, "GET", "/login")[0] == 200

    # A wrong token gets no cookie; the right one gets an HttpOnly, SameSite=Strict session.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, body = call(port, "POST", "/login", form, urlencode({"token": "guess", "next": "/"}).encode())
    assert status == 401 and "set-cookie" not in headers and "not the daemon" in body
    status, headers, _ = call(
        port, "POST", "/login", form, urlencode({"token": TOKEN, "next": "//evil.test/phish"}).encode()
    )
    assert status == 303 and headers["location"] == "/"  # never another site
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    session = {"Cookie": cookie.split(";", 1)[0]}

    status, _, page = call(port, "GET", f"/runs/{run}", session)
    assert status == 200 and "secret-looking-output" in page  # signed in: the log too
    assert call(port, "GET", f"/api/runs/{run}/logs?tail=5", session)[0] == 200
    # The cookie rides along with any request a browser makes: it never stops or syncs anything.
    assert call(port, "POST", f"/api/runs/{run}/stop", session)[0] == 401
    assert call(port, "POST", "/api/repos/models/sync", session)[0] == 401
    forged = {"Cookie": "reconciler_session=99999999999.0000"}
    assert call(port, "GET", f"/runs/{run}", forged)[0] == 303
    assert daemon.api_run(run)["status"] == "running"


def test_anonymous_pages_never_show_run_logs_and_run_tokens_stay_in_their_run(
    daemons: Any, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    daemon = daemon_with(daemons, git_repo_factory, tmp_path, {"anonymous_read": True})
    run = daemon.run["name"]
    port = daemon.port
    status, _, page = call(port, "GET", f"/runs/{run}")
    assert status == 200 and "secret-looking-output" not in page and "sign in" in page
    assert call(port, "GET", f"/api/runs/{run}/logs?follow=true")[0] == 401
    assert call(port, "GET", f"/api/runs/{run}/outputs")[0] == 401  # the API itself keeps its token

    # A run's token, read from its environment, reports for that run and nothing else.
    environ = Path(f"/proc/{_pid_of(daemon, run)}/environ").read_bytes().split(b"\0")
    token = next(v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"POLYAXON_RUN_TOKEN="))
    assert token.startswith("prt_") and token not in daemon.log_text()
    mine = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = b'{"metrics": {"loss": 0.5}}'
    assert call(port, "POST", f"/api/runs/{run}/metrics", mine, body)[0] == 202
    for path in (f"/api/runs/{run}", f"/api/runs/{run}/logs", "/api/runs"):
        assert call(port, "GET", path, mine)[0] == 401, path  # a run token reads nothing
    assert call(port, "POST", f"/api/runs/{run}/stop", mine)[0] == 401
    assert call(port, "POST", "/api/runs/another-run/metrics", mine, body)[0] == 401
    assert not RunTokens("x" * 64).valid(run, token)  # another key: another daemon's tokens are not ours
    daemon.cli("runs", "stop", run)
    daemon.wait_run("#long", lambda r: r["status"] == "stopped", "the stop")
    assert call(port, "POST", f"/api/runs/{run}/metrics", mine, body)[0] == 409  # done: nothing more


def _pid_of(daemon: Any, run: str) -> int:
    """The pid of the run's command (its wrapper's child), from the local backend's records."""
    import json

    [child] = list(daemon.data_dir.glob(f"local-runs/*/{run}/attempts/1.child.json"))
    return int(json.loads(child.read_text())["pid"])


@pytest.mark.parametrize("host", ["0.0.0.0"])
def test_off_loopback_without_a_token_the_pages_are_closed_by_default(
    daemons: Any, git_repo_factory: GitRepoFactory, tmp_path: Path, host: str
) -> None:
    git = git_repo_factory.create("models", {"README.md": "models\n"})
    daemon = daemons(
        [{"name": "models", "url": git.file_url, "branch": "main", "interval": 1}],
        f"sqlite:///{tmp_path / 'reconciler.db'}",
        extra={"server": {"host": host}},
    ).start()
    assert call(daemon.port, "GET", "/")[0] == 403
    assert "server.anonymous_read" in daemon.log_text()
