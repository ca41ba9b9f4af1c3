"""Retry in place with the one backoff (`reconciler.backoff`), the clock's `sleep` passed in so
tests never wait. `retry` is the only loop, and it takes the classification (retry or stop) from
the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from reconciler.backoff import Backoff

T = TypeVar("T")


class RetriesExhausted(Exception):
    """Every try failed with a retryable error; `last` is the final one."""

    def __init__(self, last: Exception, attempts: int, waited_s: float) -> None:
        super().__init__(str(last))
        self.last = last
        self.attempts = attempts
        self.waited_s = waited_s


def retry(
    call: Callable[[], T],
    *,
    backoff: Backoff,
    retryable: Callable[[Exception], bool],
    sleep: Callable[[float], None],
    on_retry: Callable[[Exception, int, float], None] | None = None,
) -> T:
    """Run `call`; on a retryable error wait per `backoff` and try again.

    A non-retryable error propagates at once. When the tries run out, `RetriesExhausted` wraps
    the last error. `on_retry(error, next_try_number, delay_s)` is called before each wait.
    """
    delays = backoff.delays()
    waited = 0.0
    for n in range(backoff.attempts):
        try:
            return call()
        except Exception as err:
            if not retryable(err):
                raise
            if n == backoff.attempts - 1:
                raise RetriesExhausted(err, backoff.attempts, waited) from err
            delay = delays[n]
            if on_retry is not None:
                on_retry(err, n + 2, delay)
            sleep(delay)
            waited += delay
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["Backoff", "RetriesExhausted", "retry"]
