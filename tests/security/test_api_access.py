"""Threats: anyone who reaches the HTTP port stops runs, triggers syncs or reads run logs; a web
page in the operator's browser does it for them (CSRF), or through a name that resolves to the
daemon (DNS rebinding).

The daemon as a process, asked over real HTTP with exactly the headers an attacker controls:
no token, a wrong one, a foreign Origin, a Host of another name. The CLI's `runs stop` and
`runs logs` send the token of their config.
"""

from __future__ import annotations

import http.client
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import job, reconciler_argv
from tests.infra.git_server import GitRepoFactory

from .conftest import secret_file

TOKEN = "s3cret-api-token-for-the-tests"


def call(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any] | str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True)
        for name, value in {"Host": f"127.0.0.1:{port}", **headers}.items():
            if value is not None:
                connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read().decode()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, body
    finally:
        connection.close()


@pytest.fixture
def guarded(daemons: Any, git_repo_factory: GitRepoFactory, tmp_path: Path) -> Any:
    """A daemon with an API token and one long job to stop and read."""
    git = git_repo_factory.create("models", {"ops/long.yaml": job("long", "echo started; exec sleep 600")})
    token_file = secret_file(tmp_path / "api-token", TOKEN)
    daemon = daemons(
        [{"name": "models", "url": git.file_url, "branch": "main", "interval": 1}],
        f"sqlite:///{tmp_path / 'reconciler.db'}",
        extra={"server": {"token_file": str(token_file), "public_url": "https://reconciler.example.com"}},
        token=TOKEN,
    ).start()
    daemon.run = daemon.wait_run("#long", lambda r: r["status"] == "running", "the long job to run")
    return daemon


BEARER = {"Authorization": f"Bearer {TOKEN}"}


MATRIX: list[tuple[str, str, dict[str, str], int]] = [
    ("GET", "/api/runs", {}, 401),
    ("GET", "/api/runs", {"Authorization": "Bearer nope"}, 401),
    ("GET", "/api/runs", {"Authorization": f"Basic {TOKEN}"}, 401),
    ("GET", "/api/runs", {"Authorization": f"Bearer {TOKEN[:-1]}"}, 401),
    ("GET", "/api/runs/{run}/logs", {}, 401),
    ("POST", "/api/runs/{run}/stop", {}, 401),
    ("POST", "/api/repos/models/sync", {}, 401),
    ("GET", "/api/runs", BEARER, 200),
    ("GET", "/api/runs/{run}/logs", BEARER, 200),
    ("POST", "/api/repos/models/sync", BEARER, 202),
    # The pages commit statuses link to: readable without a token, never from another name.
    ("GET", "/runs/{run}", {}, 200),
    ("GET", "/runs/{run}", {"Host": "rebind.attacker.test:8080"}, 403),
    # DNS rebinding and CSRF, even with the token (a browser would not have it, but no matter).
    ("GET", "/api/runs", {**BEARER, "Host": "rebind.attacker.test"}, 403),
    ("POST", "/api/runs/{run}/stop", {**BEARER, "Origin": "https://attacker.test"}, 403),
    ("POST", "/api/runs/{run}/stop", {**BEARER, "Origin": "null"}, 403),
    ("POST", "/api/repos/models/sync", {**BEARER, "Sec-Fetch-Site": "cross-site"}, 403),
    ("POST", "/api/repos/models/sync", {**BEARER, "Origin": "https://reconciler.example.com"}, 202),
    # Probes keep their own rules.
    ("GET", "/healthz", {"Host": "anything.test"}, 200),
    ("GET", "/metrics", {}, 200),
]


def test_api_refuses_the_unauthenticated_and_the_foreign(guarded: Any) -> None:
    """One daemon, the whole matrix (each case's mismatch is listed)."""
    wrong = []
    for method, path, headers, status in MATRIX:
        got, body = call(guarded.port, method, path.format(run=guarded.run["name"]), headers)
        refused_well = status < 400 or (isinstance(body, dict) and bool(body.get("error")))
        if got != status or not refused_well:
            wrong.append(f"{method} {path} {headers}: {got} {body!r}, expected {status}")
    assert not wrong, "\n".join(wrong)
    assert guarded.api_run(guarded.run["name"])["status"] == "running"  # no refused stop went through


def test_the_cli_sends_the_configs_token_and_a_stop_goes_through(guarded: Any, tmp_path: Path) -> None:
    name = guarded.run["name"]
    # The same settings without the token: the daemon refuses, and the CLI says so.
    settings = yaml.safe_load(guarded.config.read_text())
    del settings["server"]["token_file"]
    bare = tmp_path / "no-token.yaml"
    bare.write_text(yaml.safe_dump(settings))
    for command in (["runs", "stop", name], ["runs", "logs", name]):
        refused = subprocess.run(
            [*reconciler_argv(), *command, "--config", str(bare)], capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 1 and "missing or invalid bearer token" in refused.stderr, refused
    assert guarded.api_run(name)["status"] == "running"

    logs = guarded.cli("runs", "logs", name)
    assert logs.returncode == 0 and "started" in logs.stdout, logs.stderr
    stop = guarded.cli("runs", "stop", name)
    assert stop.returncode == 0, stop.stderr
    guarded.wait_run("#long", lambda r: r["status"] == "stopped", "the stop to land")


def test_without_a_token_a_public_address_refuses_mutation_and_logs_and_says_so_once(
    daemons: Any, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    git = git_repo_factory.create("models", {"ops/hello.yaml": job("hello", "echo hello")})
    daemon = daemons(
        [{"name": "models", "url": git.file_url, "branch": "main", "interval": 1}],
        f"sqlite:///{tmp_path / 'reconciler.db'}",
        extra={"server": {"host": "0.0.0.0"}},
    ).start()
    run = daemon.wait_run("#hello", lambda r: r["status"] == "succeeded", "the job to finish")
    name = run["name"]
    assert call(daemon.port, "POST", f"/api/runs/{name}/stop", {})[0] == 403
    assert call(daemon.port, "POST", "/api/repos/models/sync", {})[0] == 403
    assert call(daemon.port, "GET", f"/api/runs/{name}/logs", {})[0] == 403
    assert call(daemon.port, "GET", "/api/runs", {})[0] == 200  # reading runs stays open
    assert call(daemon.port, "GET", "/api/runs", {"Host": "rebind.attacker.test"})[0] == 403
    warnings = [line for line in daemon.log_text().splitlines() if "without server.token_file" in line]
    assert len(warnings) == 1, daemon.log_tail()
    cli = daemon.cli("runs", "stop", name)
    assert cli.returncode == 1 and "server.token_file" in cli.stderr, cli.stderr


@pytest.mark.parametrize("problem", ["missing", "empty", "world-readable"])
def test_an_api_token_that_cannot_be_used_stops_the_start(
    daemons: Any, git_repo_factory: GitRepoFactory, tmp_path: Path, problem: str
) -> None:
    """A configured token that cannot be read never leaves the API open: the daemon exits 2."""
    git = git_repo_factory.create("models", {"README.md": "models\n"})
    token_file = tmp_path / "api-token"
    if problem != "missing":
        token_file.write_text("" if problem == "empty" else TOKEN)
        token_file.chmod(0o600 if problem == "empty" else 0o644)
    daemon = daemons(
        [{"name": "models", "url": git.file_url, "branch": "main", "interval": 1}],
        f"sqlite:///{tmp_path / 'reconciler.db'}",
        extra={"server": {"token_file": str(token_file)}},
    )
    proc = daemon.spawn()
    assert proc.wait(60) == 2, daemon.log_tail()
    assert "server token" in daemon.log_text() or "secret file refused" in daemon.log_text()
    assert daemon.get("/healthz") is None
