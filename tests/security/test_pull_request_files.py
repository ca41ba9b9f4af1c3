"""Threat: a pull request whose files make the daemon fetch, parse its way into code, or run.

Validation and the plan comment read a pull request's files and execute nothing. This pull
request opts itself in every way it could (`previews: ["*"]` in its own repo config, a
`preview` tag, a new op), points `urlRef` at a server of ours that counts its visitors, uses a
hub component, and carries hostile YAML (an alias bomb, a PyYAML code-execution tag, deep
nesting). After its check is done (the plan comment is there): no request reached the server,
no marker file was written, no run or run directory exists for it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import job
from tests.infra.git_server import GitRepoFactory
from tests.infra.webhooks import WebhookSender

from .conftest import secret_file

PROJECT = "acme/models"


class Counting(ThreadingHTTPServer):
    daemon_threads = True
    hits: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: Counting

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        body = b"version: 1.1\nkind: component\nrun: {kind: job, container: {image: x, command: [touch, /tmp/x]}}\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def counting_server() -> Iterator[Counting]:
    server = Counting(("127.0.0.1", 0), _Handler)
    server.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def hostile_files(marker: Path, url: str) -> dict[str, str]:
    touch = f"touch {marker}"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    return {
        ".polyaxon-reconciler.yaml": 'previews: ["*"]\npreviews_from_forks: true\nhub_dir: hub\n',
        "ops/evil.yaml": job("evil", touch).replace("kind: operation\n", "kind: operation\ntags: [preview]\n"),
        "ops/url.yaml": f"version: 1.1\nkind: operation\nname: fetched\nurlRef: {url}/component.yaml\n",
        "ops/hub.yaml": "version: 1.1\nkind: operation\nname: hubbed\nhubRef: evil:latest\n",
        "hub/evil/latest.yaml": (
            "version: 1.1\nkind: component\nname: evil\n"
            f"run: {{kind: job, container: {{image: busybox, command: [/bin/sh, -c, '{touch}-hub']}}}}\n"
        ),
        "ops/bomb.yaml": bomb,
        "ops/python.yaml": (
            f'version: 1.1\nkind: operation\nname: py\nparams: !!python/object/apply:os.system ["{touch}-python"]\n'
        ),
        "ops/deep.yaml": "version: 1.1\nkind: operation\nname: deep\nparams: " + "[" * 5000 + "]" * 5000 + "\n",
    }


def test_a_hostile_pull_request_is_validated_and_planned_and_runs_nothing(
    daemons: Any,
    git_repo_factory: GitRepoFactory,
    forge_server: Any,
    counting_server: Counting,
    tmp_path: Path,
) -> None:
    git = git_repo_factory.create("models", {"ops/smoke.yaml": job("smoke", "echo smoke")})
    base = git.head()
    marker = tmp_path / "ran"
    git.checkout("attack", create=True)
    url = f"http://127.0.0.1:{counting_server.server_address[1]}"
    head = git.commit("everything at once", hostile_files(marker, url))
    git.open_pull_request(7)
    # A second pull request, valid this time, that opts itself in: its head would compile and run.
    git.checkout("main")
    git.checkout("self-opt-in", create=True)
    files = hostile_files(marker, url)
    opted = git.commit(
        "opt myself in",
        {name: files[name] for name in (".polyaxon-reconciler.yaml", "ops/evil.yaml", "hub/evil/latest.yaml")}
        | {"ops/hub.yaml": "version: 1.1\nkind: operation\nname: hubbed\nhubRef: evil\ntags: [preview]\n"},
    )
    git.open_pull_request(8)
    forge = {
        "provider": "github",
        "project": PROJECT,
        "api_url": forge_server.url("github"),
        "token_file": str(secret_file(tmp_path / "forge-token", forge_server.tokens["github"])),
        "webhook_secret_file": str(secret_file(tmp_path / "webhook-secret", "webhook-secret")),
    }
    daemon = daemons(
        [{"name": "models", "url": git.file_url, "branch": "main", "interval": 1, "forge": forge}],
        f"sqlite:///{tmp_path / 'reconciler.db'}",
    ).start()
    daemon.wait_run("#smoke", lambda r: r["status"] == "succeeded", "the base branch's job")
    sender = WebhookSender("webhook-secret")
    for number, sha in ((7, head), (8, opted)):
        _, response = sender.pull_request(
            "github", f"{daemon.url}/webhooks/github", repo=PROJECT, number=number, head_sha=sha, base_sha=base
        )
        assert response.status == 200, response.body
    body = daemon.wait(lambda: forge_server.comments("github", PROJECT, 7), "the plan comment")[0]["body"]
    assert "Invalid" in body, body  # validated: the hostile files are reported, not run
    opted_body = daemon.wait(lambda: forge_server.comments("github", PROJECT, 8), "the second comment")[0]["body"]
    assert "**Valid**" in opted_body and "+ create models:ops/evil.yaml#evil" in opted_body, opted_body
    for sha in (head, opted):
        daemon.wait(
            lambda sha=sha: any(
                s["context"] == "polyaxon/validate" for s in forge_server.statuses("github", PROJECT, sha)
            ),
            "the validate statuses",
        )

    assert counting_server.hits == [], "a urlRef of the pull request was fetched"
    assert not list(tmp_path.glob("ran*")), "something of the pull request ran"
    assert [r["name"] for r in daemon.api_runs() if r["name"].startswith("pr-")] == []
    assert not list((daemon.data_dir / "local-runs").glob("pr-*")) + list(
        (daemon.data_dir / "local-runs").glob("*/pr-*")
    )
    assert "Previews" not in body  # the base branch opts nothing in: nothing to withhold either
    assert "Traceback" not in daemon.log_text()
