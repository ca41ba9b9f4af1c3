"""Capped exponential backoff: the one formula every wait-and-try-again in the reconciler uses.

The git fetch retried in place, the work queue's per-item requeue, the outbox's per-row retry and
its loop after a database error, a local run's restart after a failed attempt, and the Kubernetes
client's retried calls and broken watches all ask this one value how long to wait. It is pure (no
clock, no sleeping), so each caller decides how to wait and tests read the schedule directly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0  # seconds after the first failure
    cap: float = 60.0  # never longer than this
    factor: float = 2.0
    attempts: int = 1  # tries in all, for callers that retry in place (see `source.backoff.retry`)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial < 0 or self.factor < 1 or self.cap < 0:
            raise ValueError(f"invalid backoff {self}")

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row: initial * factor**(failures - 1),
        at most `cap`; none before the first failure."""
        if failures <= 0:
            return 0.0
        # The exponent is bounded first, so a long outage cannot overflow the float.
        return float(min(self.cap, self.initial * self.factor ** min(failures - 1, 64)))

    def delays(self) -> list[float]:
        """The waits before try 2, 3, ... `attempts`."""
        return [self.delay(n) for n in range(1, self.attempts)]


__all__ = ["Backoff"]
