"""Helpers for the local backend tests against real processes: backends over a temp state dir,
run requests, and `wait_until` (a condition with a deadline, never a sleep as synchronisation)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.backends.local import LocalBackend
from reconciler.model import Cause, OpKey, RunRequest

DEADLINE = 20.0


def wait_until(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def make_request(
    name: str,
    script: str | None = None,
    *,
    kind: str = "job",
    container: dict[str, Any] | None = None,
    termination: dict[str, Any] | None = None,
    spec_hash: str = "hash1",
    **effective: Any,
) -> RunRequest:
    """A run whose container runs `script` with /bin/sh (as Polyaxon's `cmd` shortcut does)."""
    if container is None:
        container = {"image": "busybox:1.36", "command": ["/bin/sh", "-c"], "args": [script or "true"]}
    body: dict[str, Any] = {"run": {"kind": kind, "container": container}, **effective}
    if termination:
        body["termination"] = termination
    return RunRequest(
        name=name,
        op=OpKey("examples", f"{name}.yaml", name),
        kind=kind,
        spec_hash=spec_hash,
        effective=body,
        cause=Cause.COMMIT,
        cause_id="c0ffee",
        commit="c0ffee",
    )


class Backends:
    """Opens backends over one state dir (one at a time, as daemons are); cleans up processes."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.opened: list[LocalBackend] = []

    def open(self, **options: Any) -> LocalBackend:
        settings: dict[str, Any] = {"interval": 0.05, "stop_grace": 2.0, "backoff_base": 0.1, "backoff_cap": 0.4}
        settings.update(options)
        backend = LocalBackend(self.state_dir, **settings)
        self.opened.append(backend)
        return backend

    def cleanup(self) -> None:
        for backend in self.opened:
            backend.close()
        sweeper = LocalBackend(self.state_dir, supervise=False)
        for owned in sweeper.list_owned():
            sweeper.delete(owned.run)
        sweeper.close()


def statuses(backend: LocalBackend, name: str) -> list[str]:
    return [event["status"] for event in backend.history(name)]


def final_status(backend: LocalBackend, name: str, timeout: float = DEADLINE) -> str:
    done = {"succeeded", "failed", "stopped", "unknown"}
    status = wait_until(
        lambda: backend.status(name) if backend.status(name) in done else None, timeout, f"{name} to finish"
    )
    return str(status)
