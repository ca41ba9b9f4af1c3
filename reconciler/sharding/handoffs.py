"""The owner's side of hand-offs: take the rows written for the repos this replica owns.

A thread waits on PostgreSQL's `LISTEN` (woken by the `NOTIFY` each hand-off sends), and also
looks once a second whatever it hears, so a lost notification or a broken listening connection
costs at most a second. Rows are taken (deleted) in the transaction that reads them, so each is
delivered once; a replica that dies after taking a push loses nothing the next poll will not see.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

from reconciler.backoff import Backoff
from reconciler.tracking import Handoff, Store

log = logging.getLogger(__name__)

# The payload a replica announces when it joins or leaves (no repo is named "*").
MEMBERS = "*"

# Rows for a repo no replica took in this long (a repo removed from every replica's config) go.
KEEP = timedelta(days=1)


class HandoffPump:
    def __init__(
        self,
        store: Store,
        owned: Callable[[], Collection[str]],
        deliver: Callable[[Handoff], None],
        *,
        poll: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_members: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_members` is called when a replica announces that it joined or left (`MEMBERS`)."""
        self.on_members = on_members
        self.store = store
        self.owned = owned
        self.deliver = deliver
        self.poll = poll
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned = 0.0
        self._drain_lock = threading.Lock()

    def drain(self) -> int:
        """Take and deliver what is waiting for the repos owned now; how many were delivered."""
        with self._drain_lock:
            owned = self.owned()
            delivered = 0
            while owned:
                rows = self.store.take_handoffs(owned)
                for row in rows:
                    try:
                        self.deliver(row)
                        delivered += 1
                    except Exception:
                        log.exception("a hand-off could not be delivered", extra={"repo": row.repo, "kind": row.kind})
                if len(rows) < 100:
                    break
            if time.monotonic() - self._pruned > 3600:
                self._pruned = time.monotonic()
                self.store.prune_handoffs(self.clock() - KEEP)
            return delivered

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="handoffs", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        listener = self.store.handoff_listener()
        backoff = Backoff(initial=0.5, cap=10.0)
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    if MEMBERS in listener.wait(self.poll):
                        self.on_members()
                    self.drain()
                    failures = 0
                except Exception as e:
                    failures += 1
                    delay = backoff.delay(failures)
                    log.warning("hand-offs: %s; trying again in %.1fs", e, delay)
                    self._stop.wait(delay)
        finally:
            listener.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


__all__ = ["MEMBERS", "HandoffPump"]
