"""`termination.maxRetries` and `termination.timeout` as decisions of plain data and `now`.

A failed run is retried while attempts remain, after a capped exponential backoff, passing
through Polyaxon's `retrying` status; stopped, skipped and upstream_failed runs are not retried
(someone or something chose to end them), nor are runs that hit their timeout, as Kubernetes does
not retry a Job past its activeDeadlineSeconds. A run past its timeout is stopped with the reason
`TimeoutExceeded` and ends `failed`, so a timeout never reads as a deliberate stop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reconciler.statuses import Status, is_done

DEFAULT_BACKOFF_BASE = dt.timedelta(seconds=10)
DEFAULT_BACKOFF_CAP = dt.timedelta(minutes=10)
TIMEOUT_REASON = "TimeoutExceeded"


def backoff(
    attempt: int, base: dt.timedelta = DEFAULT_BACKOFF_BASE, cap: dt.timedelta = DEFAULT_BACKOFF_CAP
) -> dt.timedelta:
    """Delay before retry number `attempt` (1 for the first retry): base * 2^(attempt-1), capped."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    # Bound the exponent before multiplying so a large attempt number cannot overflow.
    factor: int = 2 ** min(attempt - 1, 32)
    delay: dt.timedelta = base * factor
    return min(cap, delay)


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    attempt: int = 0  # the retry number this decision starts
    at: dt.datetime | None = None  # when to start it
    status: str | None = None  # the status to record now: retrying, or None
    reason: str = ""
    message: str = ""


def retry_decision(
    *,
    status: str,
    reason: str,
    retries_done: int,
    max_retries: int | None,
    finished_at: dt.datetime,
    base: dt.timedelta = DEFAULT_BACKOFF_BASE,
    cap: dt.timedelta = DEFAULT_BACKOFF_CAP,
) -> RetryDecision:
    """Whether a run that ended with `status` at `finished_at` is retried, and when."""
    if status != Status.FAILED or reason == TIMEOUT_REASON:
        return RetryDecision(False)
    if not max_retries or retries_done >= max_retries:
        message = f"no retries left ({retries_done} of {max_retries or 0} used)"
        return RetryDecision(False, message=message)
    attempt = retries_done + 1
    delay = backoff(attempt, base, cap)
    return RetryDecision(
        True,
        attempt,
        finished_at + delay,
        Status.RETRYING,
        "Retrying",
        f"retry {attempt} of {max_retries} in {int(delay.total_seconds())}s (termination.maxRetries)",
    )


@dataclass(frozen=True)
class TimeoutDecision:
    stop: bool
    deadline: dt.datetime | None = None  # when to look again if not stopped now
    reason: str = ""
    message: str = ""


def timeout_decision(
    *, status: str, started_at: dt.datetime | None, timeout_seconds: int | None, now: dt.datetime
) -> TimeoutDecision:
    """Stop a run that has been running longer than `termination.timeout` seconds."""
    if not timeout_seconds or started_at is None or is_done(status):
        return TimeoutDecision(False)
    deadline = started_at + dt.timedelta(seconds=timeout_seconds)
    if now < deadline:
        return TimeoutDecision(False, deadline)
    return TimeoutDecision(
        True,
        deadline,
        TIMEOUT_REASON,
        f"running for {int((now - started_at).total_seconds())}s, "
        f"longer than termination.timeout of {timeout_seconds}s",
    )


__all__ = [
    "TIMEOUT_REASON",
    "RetryDecision",
    "TimeoutDecision",
    "backoff",
    "retry_decision",
    "timeout_decision",
]
