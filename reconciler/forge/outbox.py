"""The outbox worker: posts queued commit statuses to the forges, durably and exactly once.

Rows are written by whoever changes state (`commit_status`), in the same transaction. The worker
claims due rows (a lease in the tracking DB, so two daemons never post the same row and a dead
worker's rows come back), posts each, and marks it posted or failed:

- transient failure (5xx, timeout, connection refused): retried after the one capped exponential
  backoff (`reconciler.backoff`) per row, from `backoff_base`, at most `backoff_cap`;
- rate limited (429, or 403 with rate-limit headers): the row, and every other row for the same
  forge and token, waits until the forge's reset time; no request is sent meanwhile;
- permanent failure (401, 404, 422): retried at the backoff cap, logged each time, never dropped;
  a fixed token or a pushed commit makes it succeed later.

Coalescing: only the newest state of a (sha, context) is ever claimed, and older unposted states
are retired, so after an outage the forge receives each context's latest state once.

Never twice: a row whose previous attempt may have reached the forge (the worker died mid-post,
or the request timed out after it was sent) is checked against the forge's list of statuses for
the commit before it is posted again; if the forge has it, it is marked posted without a second
POST. A row's last error starts with `NOT_SENT` when the forge certainly did not act on it.

`run_once(now)` is one step with the clock passed in (tests compress a long outage into a few
calls); `start()` runs it in a thread, woken early by `wake()` when a status is queued.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from reconciler.backoff import Backoff
from reconciler.forge.errors import ForgeError, PermanentForgeError, RateLimited
from reconciler.forge.statuses.base import CommitStatus, StatusProvider
from reconciler.tracking import OutboxEntry, Store

log = logging.getLogger(__name__)

NOT_SENT = "[not sent] "


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        clients: Mapping[str, StatusProvider],
        *,
        batch: int = 50,
        lease: dt.timedelta = dt.timedelta(seconds=120),
        backoff_base: dt.timedelta = dt.timedelta(seconds=2),
        backoff_cap: dt.timedelta = dt.timedelta(minutes=10),
        clock: Callable[[], dt.datetime] = _utcnow,
        poll_interval: float = 1.0,
        concurrency: int = 4,
    ) -> None:
        """`clients` maps a repo name (the outbox row's `repo`) to its forge's provider.

        Up to `concurrency` posts are in flight at once: a forge call is mostly waiting, and the
        rows of one claim are distinct (sha, context) pairs, so their order does not matter.
        The lease must outlast one forge call (its timeouts) times batch / concurrency.
        """
        self.store = store
        self.clients = dict(clients)
        self.batch = batch
        self.lease = lease
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._row_backoff = Backoff(initial=backoff_base.total_seconds(), cap=backoff_cap.total_seconds())
        # After a step that failed as a whole (the database unreachable, say).
        self._loop_backoff = Backoff(initial=2 * poll_interval, cap=backoff_cap.total_seconds())
        self.clock = clock
        self.poll_interval = poll_interval
        self.concurrency = max(1, concurrency)
        self.paused_until: dict[str, dt.datetime] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one step ------------------------------------------------------------------------------

    def backoff(self, attempts: int) -> dt.timedelta:
        """Delay after the `attempts`-th failed attempt of a row (1-based)."""
        return dt.timedelta(seconds=self._row_backoff.delay(max(attempts, 1)))

    def run_once(self, now: dt.datetime) -> int:
        """Claim the due rows and post them; returns how many reached (or were found on) the forge."""
        self.store.coalesce_outbox(now)
        rows = self.store.claim_outbox(self.batch, now, self.lease)
        if len(rows) <= 1 or self.concurrency == 1:
            return sum(self._handle(row, now) for row in rows)
        return sum(self._executor().map(lambda row: self._handle(row, now), rows))

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="forge-post")
            return self._pool

    def close(self) -> None:
        """Stop the thread (if started) and the posting pool."""
        self.stop()
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def _handle(self, row: OutboxEntry, now: dt.datetime) -> int:
        assert row.id is not None
        client = self.clients.get(row.repo)
        if client is None:
            self._fail(row, now + self.backoff_cap, NOT_SENT + f"no forge configured for repo {row.repo!r}")
            return 0
        with self._pool_lock:
            paused = self.paused_until.get(client.rate_key)
        if paused is not None and paused > now:
            self.store.mark_failed(row.id, paused, NOT_SENT + f"rate limited until {paused.isoformat()}")
            return 0
        status = CommitStatus(row.sha, row.context, row.state, row.description, row.target_url)
        try:
            if self._may_have_landed(row) and self._on_forge(client, status):
                self.store.mark_posted(row.id, now)
                log.info("commit status was already on the forge", extra=self._fields(row))
                return 1
            client.post_status(status)
        except RateLimited as e:
            until = e.retry_at(now)
            with self._pool_lock:
                self.paused_until[client.rate_key] = max(until, self.paused_until.get(client.rate_key, until))
            self._fail(row, until, NOT_SENT + str(e))
            return 0
        except PermanentForgeError as e:
            self._fail(row, now + self.backoff_cap, NOT_SENT + str(e), level=logging.ERROR)
            return 0
        except ForgeError as e:
            prefix = "" if e.sent else NOT_SENT
            self._fail(row, now + self.backoff(row.attempts), prefix + str(e))
            return 0
        self.store.mark_posted(row.id, now)
        return 1

    @staticmethod
    def _may_have_landed(row: OutboxEntry) -> bool:
        # `attempts` counts claims, this one included: > 1 means an earlier attempt happened.
        return row.attempts > 1 and not (row.last_error or "").startswith(NOT_SENT)

    @staticmethod
    def _on_forge(client: StatusProvider, status: CommitStatus) -> bool:
        return any(s.context == status.context and s.state == status.state for s in client.list_statuses(status.sha))

    def _fail(self, row: OutboxEntry, next_attempt: dt.datetime, error: str, level: int = logging.WARNING) -> None:
        assert row.id is not None
        self.store.mark_failed(row.id, next_attempt, error[:2000])
        log.log(level, "commit status not posted: %s", error, extra={**self._fields(row), "retry_at": next_attempt})

    @staticmethod
    def _fields(row: OutboxEntry) -> dict[str, object]:
        return {"repo": row.repo, "sha": row.sha, "context": row.context, "state": str(row.state)}

    # -- the daemon's thread -------------------------------------------------------------------

    def wake(self) -> None:
        """Post now rather than at the next poll (call after queueing a status)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="forge-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                done = self.run_once(self.clock())
                failures = 0
            except Exception:  # the DB is unreachable, say: keep the thread, back off
                failures += 1
                log.exception("outbox step failed")
                done = 0
                self._stop.wait(self._loop_backoff.delay(failures))
                continue
            if done < self.batch:
                self._wake.wait(self.poll_interval)
