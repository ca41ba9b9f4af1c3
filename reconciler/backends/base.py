"""The one small interface every backend implements, and its typed errors.

Errors say what the caller should do next (as Flux's do): a `TransientBackendError` is retried
with capped exponential backoff by the caller; a `PermanentBackendError` is recorded on the run
(e.g. `unschedulable` when an operator's CRD is missing) and not retried until the spec changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from reconciler.model import ObservedObject, RunReport, RunRequest, StatusTransition


class BackendError(Exception):
    """Base class; `status` is the run status to record when the error is final."""

    status: str | None = None


class TransientBackendError(BackendError):
    """Try again later: timeouts, 5xx, connection refused, conflicts being resolved."""


class PermanentBackendError(BackendError):
    """Will not succeed as is: invalid object, missing CRD, forbidden."""

    def __init__(self, message: str, status: str | None = "failed") -> None:
        super().__init__(message)
        self.status = status


class UnsupportedKind(PermanentBackendError):
    """This backend can never run the kind (an operator kind on the local backend): retrying the
    run would change nothing, so a failing long-running op is not retried (see `plan`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status="unschedulable")


class Backend(Protocol):
    name: str

    def submit(self, run: RunRequest) -> str:
        """Create the run's objects. Idempotent: the same run name twice is one object, and an
        existing object carrying our labels is adopted. Returns a reference to the object."""
        ...

    def apply(self, run: RunRequest) -> str:
        """Converge a long-running run (service, raycluster, daskcluster) to `run`'s spec."""
        ...

    def stop(self, run_name: str) -> None:
        """Ask the run to stop; its status moves through `stopping` to `stopped`."""
        ...

    def delete(self, run_name: str) -> None:
        """Remove the run's objects (prune, ttl). Deleting what is gone is not an error."""
        ...

    def observe(self, timeout: float | None = None) -> Iterator[StatusTransition | RunReport]:
        """Status transitions as they happen (and, from a backend that reads them, what runs
        report while they run); returns after `timeout` seconds without any."""
        ...

    def list_owned(self) -> list[ObservedObject]:
        """Every object this backend manages (ownership labels), for prune, adoption and drift."""
        ...

    def logs(self, run_name: str, tail: int | None = None) -> str:
        """The run's logs (main container), as far as the backend keeps them."""
        ...

    def ready(self) -> str | None:
        """None when the backend can take work now, else what is wrong, in a few words. A real,
        cheap call bounded to a few seconds (the daemon's `/readyz` asks it on every probe), never
        a read of a cache that a dead or frozen server would leave standing."""
        ...

    def close(self) -> None: ...
