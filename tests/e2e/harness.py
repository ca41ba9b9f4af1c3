"""The daemon as a user runs it: `reconciler run --config FILE` in a real subprocess.

`DaemonProcess` writes the settings file, starts and stops the process (SIGTERM, or SIGKILL to
crash it), talks to its HTTP server and runs the other CLI commands against the same config. It
never sleeps to synchronise: every wait is a condition polled with a deadline, and a timeout
shows the tail of the daemon's log, which is what one needs to see why.

Local runs outlive the daemon by design (a restarted daemon re-attaches to them), so
`sweep_local_runs` kills what the daemon left behind and `leftover_processes` checks that nothing
carrying a test's marker still runs.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from reconciler.backends.local import LocalBackend

T = TypeVar("T")

# Generous for a 2-core machine shared with other builds; conditions usually hold in well under 1 s.
DEADLINE = 30.0
FINAL = frozenset({"succeeded", "failed", "stopped", "skipped", "upstream_failed", "unschedulable", "done"})


def reconciler_argv() -> list[str]:
    """The installed `reconciler` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("reconciler")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from reconciler.cli import main; main()"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(
    url: str, method: str = "GET", timeout: float = 5.0, headers: dict[str, str] | None = None
) -> tuple[int, str] | None:
    """(status, body), or None when nothing answers at that address."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError):
        return None


def job(name: str, command: str, *, params: dict[str, Any] | None = None, kind: str = "job") -> str:
    """A polyaxonfile with an inline component whose container runs `command` with /bin/sh."""
    params = params or {}
    doc: dict[str, Any] = {"version": 1.1, "kind": "operation", "name": name}
    if params:
        doc["params"] = dict(params)
    doc["component"] = {
        **({"inputs": [{"name": p, "type": "str"} for p in params]} if params else {}),
        "run": {"kind": kind, "container": {"image": "busybox", "command": ["/bin/sh", "-c", command]}},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def service(name: str, command: str) -> str:
    return job(name, command, kind="service")


class DaemonProcess:
    """One daemon's config, data dir and process; restartable (same config, same data)."""

    def __init__(
        self,
        base: Path,
        repos: Sequence[dict[str, Any]],
        database: str,
        *,
        extra: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        token: str | None = None,
    ) -> None:
        """`extra`: more settings. Unless it has a `local` key, runs keep this process's user (the
        e2e tests write files from their runs); tests/security passes `local: {}` for the daemon's
        real default. `env`: more variables for the daemon's environment. `token`: the API
        token the harness sends (set `server.token_file` in `extra` to the same value)."""
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.data_dir = base / "data"
        self.port = free_port()
        self.database = database
        self.config = base / "cfg.yaml"
        extra = dict(extra or {})
        settings: dict[str, Any] = {
            "repos": list(repos),
            "backend": "local",
            "database": database,
            "data_dir": str(self.data_dir),
            # `extra["server"]` adds to this (the port is the harness's).
            "server": {"host": "127.0.0.1", "port": self.port, **extra.pop("server", {})},
            "log_level": "info",
            "log_format": "console",
            "local": {"run_as": getpass.getuser()},
            **extra,
        }
        self.env = dict(env or {})
        self.token = token
        self.config.write_text(yaml.safe_dump(settings, sort_keys=False))
        self.log_file = base / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # --- process ------------------------------------------------------------------------------

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start `reconciler run` without waiting for it to serve."""
        assert self.proc is None or self.proc.poll() is not None, "the daemon is already running"
        self.starts += 1
        log = self.log_file.open("ab")
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(
            [*reconciler_argv(), "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            # Its own group, so a Ctrl-C of pytest does not reach it twice; runs it starts
            # get their own groups from the local backend anyway.
            start_new_session=True,
        )
        log.close()
        return self.proc

    def start(self, timeout: float = DEADLINE) -> DaemonProcess:
        """Start and wait until `/healthz` answers.

        The port was free when chosen; on a machine running other tests it may be taken before the
        daemon binds it. That one failure is the harness's, not the daemon's: a new port is picked
        and the daemon started again (at most twice more)."""
        for attempt in range(3):
            proc = self.spawn()

            def serving(proc: subprocess.Popen[bytes] = proc) -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"the daemon exited with {proc.returncode}:\n{self.log_tail()}")
                answer = self.get("/healthz")
                return answer is not None and answer[0] == 200

            try:
                self.wait(serving, "/healthz to answer", timeout)
                return self
            except AssertionError:
                if attempt == 2 or "is the port in use" not in self.log_tail(20):
                    raise
                self._move_to(free_port())
        return self

    def _move_to(self, port: int) -> None:
        settings = yaml.safe_load(self.config.read_text())
        settings["server"]["port"] = self.port = port
        self.config.write_text(yaml.safe_dump(settings, sort_keys=False))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """Crash it: SIGKILL, nothing gets to clean up."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = DEADLINE) -> tuple[int, float]:
        """SIGTERM and wait: (exit code, seconds it took)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"the daemon did not exit within {timeout}s of SIGTERM:\n{self.log_tail()}") from None
        return code, time.monotonic() - started

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    # --- talking to it ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, method: str = "GET") -> tuple[int, str] | None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return http(self.url + path, method, headers=headers)

    def api_runs(self, **query: str) -> list[dict[str, Any]]:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        answer = self.get("/api/runs" + (f"?{qs}" if qs else ""))
        assert answer is not None and answer[0] == 200, f"/api/runs: {answer}\n{self.log_tail()}"
        return list(json.loads(answer[1]))

    def api_run(self, name: str) -> dict[str, Any]:
        answer = self.get(f"/api/runs/{name}")
        assert answer is not None and answer[0] == 200, f"/api/runs/{name}: {answer}"
        return dict(json.loads(answer[1]))

    def metrics(self) -> str:
        answer = self.get("/metrics")
        assert answer is not None and answer[0] == 200
        return answer[1]

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`reconciler <args> --config <this daemon's config>`."""
        return subprocess.run(
            [*reconciler_argv(), *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cli_json(self, *args: str) -> Any:
        done = self.cli(*args, "--format", "json")
        assert done.returncode == 0, f"reconciler {' '.join(args)} exited {done.returncode}: {done.stderr}"
        return json.loads(done.stdout)

    def wait(self, condition: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
        """Poll `condition` until truthy; on timeout fail with `what` and the daemon's log."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() >= deadline:
                log = self.log_tail()
                raise AssertionError(f"timed out after {timeout}s waiting for {what}\n--- daemon log ---\n{log}")
            time.sleep(0.05)

    def wait_run(
        self, op_suffix: str, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = DEADLINE
    ) -> dict[str, Any]:
        """The first run (newest first) of an op whose key ends with `op_suffix` matching `predicate`."""

        def found() -> dict[str, Any] | None:
            if not self.running:
                raise AssertionError(f"the daemon died:\n{self.log_tail()}")
            for run in self.api_runs():
                if run["op"].endswith(op_suffix) and predicate(run):
                    return run
            return None

        return self.wait(found, what, timeout)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus exposition (0 when the series does not exist)."""
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.index("}") + 1]))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- cleanup ------------------------------------------------------------------------------------


@dataclass
class Leftover:
    pid: int
    cmdline: str


def local_run_dir(data_dir: Path, run: str) -> Path:
    """Where the local backend keeps `run`: `local-runs/<daemon instance>/<run>` (or, for runs of
    releases before the instance, `local-runs/<run>`)."""
    root = data_dir / "local-runs"
    found = [p for p in root.glob(f"*/{run}") if p.is_dir()] if root.exists() else []
    return found[0] if found else root / run


def sweep_local_runs(data_dir: Path) -> None:
    """Kill every process the local backend started under `data_dir` and remove the run dirs.

    Only once no daemon holds the state dir (the backend's lock refuses a second owner)."""
    root = data_dir / "local-runs"
    if not root.exists():
        return
    # The per-daemon directories, and the root itself for runs of older releases.
    for state in [root, *(p for p in root.iterdir() if p.is_dir() and not (p / "request.json").exists())]:
        sweeper = LocalBackend(state, supervise=False)
        try:
            for owned in sweeper.list_owned():
                sweeper.delete(owned.run)
            # Directories the backend never loaded (a crash mid-create) may still name a process group.
            for run_dir in state.iterdir():
                if run_dir.is_dir() and (run_dir / "request.json").exists():
                    sweeper.delete(run_dir.name)
        finally:
            sweeper.close()


def leftover_processes(marker: str) -> list[Leftover]:
    """Processes whose command line or environment mentions `marker` (a test's temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            continue  # a zombie runs nothing; its parent (not us) reaps it
        if marker in cmdline or marker in environ:
            found.append(Leftover(int(entry.name), cmdline.strip()))
    return found
