"""Waiting on a condition with a deadline, the only synchronisation the cluster tests use.

A fixed sleep is either too short on a loaded two-core machine or wastes time everywhere else;
polling a real condition until a deadline is neither, and a timeout says what was awaited.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The awaited condition did not hold before the deadline."""


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    max_interval: float = 1.0,
) -> T:
    """Call `condition` until it returns something other than None or False, and return that.

    Exceptions raised by `condition` count as "not yet" (the component may still be starting);
    the last one is reported in the timeout message. The poll interval grows to `max_interval`
    so that long waits do not hammer the apiserver.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    delay = interval
    while True:
        try:
            result = condition()
        except WaitTimeout:
            raise
        except Exception as exc:  # condition failures are retried until the deadline
            last_error = exc
        else:
            if result is not None and result is not False:
                return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, max_interval)
