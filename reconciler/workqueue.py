"""A rate-limited work queue with the semantics of controller-runtime's (client-go workqueue).

- A key is queued at most once: adding a key that is waiting is a no-op (deduplication).
- A key being processed is never handed to a second worker; if it is added meanwhile, it is
  marked dirty and queued again when the worker calls `done()`.
- `add_rate_limited()` requeues after a per-key capped exponential delay; `forget()` resets it
  after a success. `add_after()` requeues after a fixed delay (the poll interval).
- A key waits for at most one delayed requeue: a second `add_after()` only moves it earlier
  (client-go does the same). Otherwise every extra reconcile (a webhook) that re-arms the poll
  timer would add a timer, and the key would be reconciled once per timer, for ever.

The clock is injectable (`now`), and waiting uses a condition variable, so tests drive time
without sleeping.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from reconciler.backoff import Backoff


@dataclass
class RateLimiter:
    """Per-key failure counts; the delay of each requeue is the one backoff's for that count."""

    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.005, cap=300.0))
    failures: dict[Hashable, int] = field(default_factory=dict)

    def when(self, key: Hashable) -> float:
        n = self.failures.get(key, 0) + 1
        self.failures[key] = n
        return self.backoff.delay(n)

    def forget(self, key: Hashable) -> None:
        self.failures.pop(key, None)

    def retries(self, key: Hashable) -> int:
        return self.failures.get(key, 0)


class ShutDown(Exception):
    """The queue was shut down; workers should return."""


class WorkQueue:
    def __init__(self, *, backoff: Backoff | None = None, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._backoff = RateLimiter(backoff) if backoff is not None else RateLimiter()
        self._cond = threading.Condition()
        self._queue: list[Hashable] = []  # FIFO of ready keys
        self._queued: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []  # heap of (ready at, seq, key)
        # The one live delayed entry per key; heap entries not matching it are stale (skipped).
        self._waiting: dict[Hashable, float] = {}
        self._seq = 0
        self._shutting_down = False

    # --- producers -----------------------------------------------------------------------------

    def add(self, key: Hashable) -> None:
        with self._cond:
            if self._shutting_down:
                return
            if key in self._processing:
                self._dirty.add(key)
                return
            if key in self._queued:
                return
            self._queued.add(key)
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutting_down:
                return
            ready_at = self._now() + delay
            if key in self._waiting and self._waiting[key] <= ready_at:
                return
            self._waiting[key] = ready_at
            self._seq += 1
            heapq.heappush(self._delayed, (ready_at, self._seq, key))
            self._cond.notify_all()

    def add_rate_limited(self, key: Hashable) -> float:
        """Requeue after this key's next backoff delay; returns the delay."""
        with self._cond:
            delay = self._backoff.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        with self._cond:
            self._backoff.forget(key)

    def retries(self, key: Hashable) -> int:
        with self._cond:
            return self._backoff.retries(key)

    # --- consumers -----------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> Hashable | None:
        """The next ready key (now marked processing), None on timeout; raises ShutDown."""
        deadline = None if timeout is None else self._now() + timeout
        with self._cond:
            while True:
                self._promote_due()
                if self._queue:
                    key = self._queue.pop(0)
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if self._shutting_down:
                    raise ShutDown
                wait = None if not self._delayed else max(0.0, self._delayed[0][0] - self._now())
                if deadline is not None:
                    remaining = deadline - self._now()
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._queue.append(key)
                    self._cond.notify()

    # --- lifecycle -----------------------------------------------------------------------------

    def shut_down(self) -> None:
        """Stop handing out work: waiting `get()` calls raise ShutDown once the ready keys are drained."""
        with self._cond:
            self._shutting_down = True
            self._delayed.clear()
            self._waiting.clear()
            self._queue.clear()
            self._queued.clear()
            self._cond.notify_all()

    def poke(self) -> None:
        """Wake waiters so they re-read an injected clock."""
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def depth(self) -> int:
        """Ready plus delayed keys."""
        with self._cond:
            return len(self._queue) + len(self._waiting)

    def ready(self) -> list[Hashable]:
        """The keys ready for a worker, in order (a copy)."""
        with self._cond:
            self._promote_due()
            return list(self._queue)

    def processing(self) -> int:
        with self._cond:
            return len(self._processing)

    def _promote_due(self) -> None:
        now = self._now()
        while self._delayed and self._delayed[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._delayed)
            if self._waiting.get(key) != ready_at:
                continue  # superseded by an earlier requeue of the same key
            del self._waiting[key]
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
