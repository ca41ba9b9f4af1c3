"""A FAKE backend whose runs do nothing: each run's status is what the test says it is.

This is a test double, a last resort (the project's rule: real parts first). It exists for the
orchestration tests, which are about what the daemon does when a run reaches a status (a DAG's
next op, a schedule's concurrency, an event's subscribers), where the test must choose each run's
status at a chosen time; a real backend decides statuses itself, at wall-clock times. Everything
else the daemon uses is real. `tests/integration/backends/test_backend_contract.py` holds it to
the same contract as the real `LocalBackend`: submit is idempotent by name, deleting what is gone
is no error, `list_owned` shows submitted runs with our labels.

What it records, in order: every `submit` (`submits`, idempotent repeats included, so a test can
see a run started twice), `apply` (`applies`), `stop` (`stops`) and `delete` (`deletes`). Outputs
come from the `outputs` dict the test fills. `observe` yields what `emit` queued.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.model import ObservedObject, RunRequest, StatusTransition

NAME = "scripted"


@dataclass
class _Held:
    request: RunRequest
    status: str


class ScriptedBackend:
    """`reconciler.backends.Backend`, FAKE: holds runs, never runs them (see the module docstring)."""

    name = NAME

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._events: queue.Queue[StatusTransition | None] = queue.Queue()
        self._closed = threading.Event()
        self._submit_failures: list[BaseException] = []
        self.submits: list[RunRequest] = []
        self.applies: list[RunRequest] = []
        self.stops: list[str] = []
        self.deletes: list[str] = []
        self.outputs_by_run: dict[str, dict[str, Any]] = {}

    # --- Backend --------------------------------------------------------------------------------

    def submit(self, run: RunRequest) -> str:
        with self._lock:
            if self._submit_failures:
                raise self._submit_failures.pop(0)
            self.submits.append(run)
            self._held.setdefault(run.name, _Held(run, "created"))
            return self.ref(run.name)

    def apply(self, run: RunRequest) -> str:
        with self._lock:
            self.applies.append(run)
            held = self._held.get(run.name)
            if held is None:
                self._held[run.name] = _Held(run, "created")
            else:
                held.request = run
            return self.ref(run.name)

    def stop(self, run_name: str) -> None:
        """Recorded; the status stays what the test says (a real run would move to stopped)."""
        with self._lock:
            self.stops.append(run_name)

    def delete(self, run_name: str) -> None:
        with self._lock:
            self.deletes.append(run_name)
            self._held.pop(run_name, None)

    def observe(self, timeout: float | None = None) -> Iterator[StatusTransition]:
        while not self._closed.is_set():
            try:
                item = self._events.get(timeout=timeout)
            except queue.Empty:
                return
            if item is None:
                return
            yield item

    def list_owned(self) -> list[ObservedObject]:
        with self._lock:
            return [
                ObservedObject(
                    run=name,
                    op_slug=held.request.op.slug,
                    kind=held.request.kind,
                    spec_hash=held.request.spec_hash,
                    status=held.status,
                    annotations=held.request.annotations(),
                )
                for name, held in sorted(self._held.items())
            ]

    def logs(self, run_name: str, tail: int | None = None) -> str:
        return ""

    def ready(self) -> str | None:
        """Scripted: always answers (what `/readyz` asks the real backends)."""
        return None

    def close(self) -> None:
        self._closed.set()
        self._events.put(None)

    def outputs(self, run_name: str) -> dict[str, Any]:
        """What the test said the run reported (the daemon reads this as it reads LocalBackend's)."""
        return dict(self.outputs_by_run.get(run_name, {}))

    # --- the script -----------------------------------------------------------------------------

    @staticmethod
    def ref(run_name: str) -> str:
        return f"{NAME}://{run_name}"

    def set_status(self, run_name: str, status: str) -> None:
        """The status `list_owned` reports for a held run (what a reconcile would observe)."""
        with self._lock:
            held = self._held.get(run_name)
            if held is not None:
                held.status = status

    def emit(self, run_name: str, status: str, at: datetime | None = None, reason: str = "", message: str = "") -> None:
        """The run reached `status`: reported by `list_owned` and yielded by `observe`."""
        self.set_status(run_name, status)
        self._events.put(StatusTransition(run_name, status, at or datetime.now(UTC), reason, message))

    def fail_next_submit(self, error: BaseException) -> None:
        """The next `submit` raises `error` (a crash or an outage between record and start)."""
        with self._lock:
            self._submit_failures.append(error)

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)


__all__ = ["NAME", "ScriptedBackend"]
