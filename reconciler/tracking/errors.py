"""Errors of the tracking store.

TrackingError
├── IllegalTransition   a status change the run lifecycle forbids (stop: a caller bug or a
│                       stale observation; never retry)
├── RunNameConflict     a deterministic run name already belongs to another (op, cause)
├── NotFound            the run, operation, repo or subscription named does not exist
└── DatabaseNotReady    the schema is missing or at another revision (stop; the message
                        names the command that fixes it)
"""

from __future__ import annotations

from reconciler.statuses import Status


class TrackingError(Exception):
    """Base of every error the tracking store raises on purpose."""


class IllegalTransition(TrackingError):
    def __init__(self, run_name: str, current: Status, target: Status, why: str) -> None:
        super().__init__(f"run {run_name}: {current} -> {target} is not allowed: {why}")
        self.run_name = run_name
        self.current = current
        self.target = target
        self.why = why


class RunNameConflict(TrackingError):
    pass


class NotFound(TrackingError):
    pass


class DatabaseNotReady(TrackingError):
    def __init__(self, message: str, current: str | None, head: str) -> None:
        super().__init__(message)
        self.current = current
        self.head = head
