"""A real Gitea (built by ``gitea_build``) running on 127.0.0.1 for contract tests.

It runs from a temp directory with SQLite, an admin user ``bot`` and an API token with all
scopes; git over HTTP and webhooks to loopback are allowed. Starting one takes a few seconds
(schema migration, user, token, server), so tests share one per session.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.infra.gitea_build import binary_path, static_root
from tests.infra.wait import wait_until

USER = "bot"
PASSWORD = "Passw0rd!-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class GiteaServer:
    def __init__(self, workdir: Path, binary: Path | None = None) -> None:
        self.workdir = workdir
        self.binary = binary or binary_path()
        self.port = _free_port()
        self.config = workdir / "custom" / "conf" / "app.ini"
        self.env = {**os.environ, "GITEA_WORK_DIR": str(workdir), "HOME": str(workdir / "home")}
        self.token = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.root_url}/api/v1"

    def _write_config(self) -> None:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        (self.workdir / "home").mkdir(exist_ok=True)
        w = self.workdir
        self.config.write_text(
            f"""\
; The machine's sessions run as root; this Gitea is a throw-away test server.
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true
APP_NAME = reconciler-test
RUN_MODE = prod
WORK_PATH = {w}

[database]
DB_TYPE = sqlite3
PATH = {w}/data/gitea.db

[server]
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {self.port}
ROOT_URL = {self.root_url}/
DISABLE_SSH = true
OFFLINE_MODE = true
LFS_START_SERVER = false
STATIC_ROOT_PATH = {static_root()}

[repository]
ROOT = {w}/repos
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = {secrets.token_hex(16)}

[service]
DISABLE_REGISTRATION = true

[webhook]
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 5

[log]
MODE = file
LEVEL = warn
ROOT_PATH = {w}/log
"""
        )

    def _cli(self, *args: str) -> str:
        proc = subprocess.run(
            [str(self.binary), "--config", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return proc.stdout.strip()

    def start(self, timeout: float = 60.0) -> None:
        self._write_config()
        self._cli("migrate")
        self._cli(
            "admin", "user", "create", "--username", USER, "--password", PASSWORD,
            "--email", "bot@example.test", "--admin", "--must-change-password=false",
        )  # fmt: skip
        self.token = self._cli(
            "admin", "user", "generate-access-token", "--username", USER,
            "--token-name", "tests", "--scopes", "all", "--raw",
        ).splitlines()[-1]  # fmt: skip
        log = (self.workdir / "web.log").open("wb")
        self._process = subprocess.Popen(
            [str(self.binary), "--config", str(self.config), "web"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._ready, timeout=timeout, what=f"gitea on {self.root_url}")

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"gitea exited with {self._process.returncode}; see {self.workdir}/web.log")
        try:
            with urllib.request.urlopen(f"{self.api_url}/version", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        self._process = None

    # -- a few API calls to set up scenarios -----------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, *, sudo: str | None = None) -> Any:
        """A call as the admin ``bot``, or as user ``sudo`` (Gitea lets an admin token act as anyone)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        if sudo is not None:
            headers["Sudo"] = sudo
        request = urllib.request.Request(self.api_url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def create_repo(self, name: str) -> dict[str, Any]:
        """A repository of ``bot`` with a first commit on ``main``."""
        repo: dict[str, Any] = self.api(
            "POST", "/user/repos", {"name": name, "auto_init": True, "default_branch": "main"}
        )
        return repo

    def head(self, repo: str, branch: str = "main") -> str:
        sha: str = self.api("GET", f"/repos/{USER}/{repo}/branches/{branch}")["commit"]["id"]
        return sha

    def open_pull_request(self, repo: str, branch: str, path: str = "ops/train.yaml") -> dict[str, Any]:
        """Branch off main, commit one file on the branch, open a pull request from it."""
        self.api("POST", f"/repos/{USER}/{repo}/branches", {"new_branch_name": branch, "old_branch_name": "main"})
        content = "dmVyc2lvbjogMS4xCmtpbmQ6IG9wZXJhdGlvbgo="  # "version: 1.1\nkind: operation\n"
        self.api(
            "POST",
            f"/repos/{USER}/{repo}/contents/{path}",
            {"content": content, "branch": branch, "message": "op"},
        )
        pull: dict[str, Any] = self.api(
            "POST",
            f"/repos/{USER}/{repo}/pulls",
            {"head": branch, "base": "main", "title": f"Change {branch}"},
        )
        return pull

    def create_user(self, name: str) -> None:
        """A plain (not admin) user, who can fork and open pull requests."""
        self.api(
            "POST",
            "/admin/users",
            {"username": name, "email": f"{name}@example.test", "password": PASSWORD, "must_change_password": False},
        )

    def commit_files(
        self,
        owner: str,
        repo: str,
        files: dict[str, str],
        *,
        branch: str = "main",
        new_branch: str | None = None,
        message: str = "change",
        sudo: str | None = None,
    ) -> str:
        """One commit creating or replacing ``files`` (path -> text); returns its sha."""
        body: dict[str, Any] = {
            "branch": branch,
            "message": message,
            "files": [
                {"operation": "upload", "path": path, "content": base64.b64encode(text.encode()).decode()}
                for path, text in files.items()
            ],
        }
        if new_branch:
            body["new_branch"] = new_branch
        answer: dict[str, Any] = self.api("POST", f"/repos/{owner}/{repo}/contents", body, sudo=sudo)
        sha: str = answer["commit"]["sha"]
        return sha


def started_gitea(workdir: Path) -> Iterator[GiteaServer]:
    server = GiteaServer(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
