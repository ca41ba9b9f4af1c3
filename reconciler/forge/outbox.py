"""The outbox worker: posts queued commit statuses to the forges, durably and exactly once.

Rows are written by whoever changes state (`commit_status`), in the same transaction. The worker
claims due rows (a lease in the tracking DB, so two daemons never post the same row and a dead
worker's rows come back), posts each, and marks it posted or failed.

One lane per forge. A forge here is one rate-limit key (the API URL and the token): each has
its own thread, its own posting pool, its own backoff and claims only its own repos' rows, so a
forge that is down or answers in 30 s never delays the statuses of another.

- forge unreachable, 5xx, timeout: the *forge* backs off (the one capped exponential backoff,
  `reconciler.backoff`, from `backoff_base` to `forge_backoff_cap`): its lane sends nothing until
  then, the rows it holds back are released unsent, and the next try is one row, a probe. The
  first answer from the forge resets its backoff and, after an outage, makes every row it left
  waiting due at once, so the backlog drains right after the forge comes back.
- a row whose request was sent and failed while the forge answers other calls (5xx, timeout
  after sending) waits its own backoff (`backoff_base` doubling to `backoff_cap`), so one status
  the forge always fails on cannot stall its lane; during an outage every row waits for the
  forge's next try instead. `attempts` counts only the claims that may have reached the forge:
  a refused connection or a held-back row does not grow it.
- rate limited (429, or 403 with rate-limit headers): the lane pauses until the forge's reset
  time; no request is sent meanwhile.
- refused (401, 403, 404, 422): retried at `backoff_cap`, logged each time, never dropped; a
  fixed token or a pushed commit makes it succeed later. A forge coming back does not hurry it.

Coalescing: only the newest state of a (repo, sha, context) is ever claimed, and older unposted
states are retired, so after an outage the forge receives each context's latest state once.

Never twice: a row whose earlier claim may have reached the forge (`attempts` > 1: the worker
died mid-post, or the request failed after it was sent) is checked against the forge's list of
statuses for the commit before it is posted again; if the forge has it, it is marked posted
without a second POST. A row's last error starts with `NOT_SENT` when the forge certainly did
not act on it, with `REFUSED` when the forge refused it.

`run_once(now)` steps every lane with the clock passed in (tests compress a long outage into a
few calls); `start()` runs each lane in a thread, woken early by `wake()` when a status is queued.
`backlog(now)` says, per forge, how many statuses wait and since when (metrics and `/readyz`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from reconciler.backoff import Backoff
from reconciler.forge.errors import ForgeError, PermanentForgeError, RateLimited
from reconciler.forge.statuses.base import CommitStatus, StatusProvider
from reconciler.metrics import Metrics
from reconciler.tracking import OutboxEntry, Store

log = logging.getLogger(__name__)

NOT_SENT = "[not sent] "
REFUSED = "[refused] "
# A claimed row not yet sent when this share of its lease is gone goes back unsent: another
# poster may take it when the lease ends, and two posts of one row must never overlap.
_LEASE_SHARE = 0.8


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ForgeBacklog:
    """What waits for one forge: statuses not posted yet, and the oldest one's age."""

    forge: str
    pending: int
    oldest: dt.timedelta
    last_error: str | None = None


@dataclass(eq=False)
class _Lane:
    """One forge (one rate-limit key) and the repos whose statuses go there, with its backoff.

    After any failed call the lane sends nothing for a moment (the rest of a claim is held back
    unsent, keeping its place in the queue). The forge counts as *down* when it cannot be reached, or when calls for two
    different statuses failed in a row: then it backs off call after call, up to its cap, and
    its first answer ends the outage. One status failing alone (the forge answers the others)
    never makes it down: that status backs off alone.
    """

    key: str
    forge: str
    backoff: Backoff
    clients: dict[str, StatusProvider] = field(default_factory=dict)
    failures: int = 0  # failed calls in a row (counted once per step)
    failed_rows: set[int] = field(default_factory=set)  # which statuses they were for
    unreachable: bool = False  # one of them never reached the forge
    down_since: dt.datetime | None = None
    retry_at: dt.datetime | None = None  # no call before this, after a failure
    paused_until: dt.datetime | None = None  # no call before this, after a rate limit
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)
    pool: ThreadPoolExecutor | None = None
    thread: threading.Thread | None = None

    @property
    def repos(self) -> frozenset[str]:
        return frozenset(self.clients)

    @property
    def down(self) -> bool:
        return self.unreachable or len(self.failed_rows) >= 2

    def is_down(self) -> bool:
        with self.lock:
            return self.down

    def blocked_until(self, now: dt.datetime) -> dt.datetime | None:
        with self.lock:
            times = [t for t in (self.retry_at, self.paused_until) if t is not None and t > now]
        return max(times) if times else None

    def failed(self, now: dt.datetime, row: int, error: str, *, sent: bool) -> tuple[bool, dt.datetime]:
        """A call for `row` failed as the forge's fault: (is the forge down, when to call it again).

        Calls of one step fail together when the forge is down; they count as one failure."""
        with self.lock:
            self.last_error = error
            self.failed_rows.add(row)
            self.unreachable = self.unreachable or not sent
            if self.retry_at is None or self.retry_at <= now:
                self.failures += 1
                delay = self.backoff.delay(self.failures if self.down else 1)
                self.retry_at = now + dt.timedelta(seconds=delay)
            if self.down and self.down_since is None:
                self.down_since = now
            return self.down, self.retry_at

    def answered(self) -> tuple[bool, int, dt.datetime | None]:
        """The forge answered (anything but a transient error): (was it down, failed calls, since)."""
        with self.lock:
            ended = (self.down, self.failures, self.down_since)
            self.failures, self.unreachable, self.down_since, self.retry_at = 0, False, None, None
            self.failed_rows.clear()
            self.last_error = None
            return ended

    def paused(self, now: dt.datetime) -> dt.datetime | None:
        with self.lock:
            return self.paused_until if self.paused_until is not None and self.paused_until > now else None

    def pause(self, until: dt.datetime, error: str) -> dt.datetime:
        with self.lock:
            self.last_error = error
            self.paused_until = max(until, self.paused_until or until)
            return self.paused_until

    def why(self) -> str:
        with self.lock:
            return self.last_error or "the forge is backing off"


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
        forge_backoff_cap: dt.timedelta = dt.timedelta(seconds=10),
        clock: Callable[[], dt.datetime] = _utcnow,
        poll_interval: float = 1.0,
        concurrency: int = 4,
        metrics: Metrics | None = None,
    ) -> None:
        """`clients` maps a repo name (the outbox row's `repo`) to its forge's provider; repos
        whose clients share a `rate_key` share a lane.

        Up to `concurrency` posts per forge are in flight at once: a forge call is mostly
        waiting, and the rows of one claim are distinct (repo, sha, context) keys, so their
        order does not matter. `forge_backoff_cap` bounds how long a forge that came back can
        wait for the next try (one request per forge, not per row). The lease must outlast one
        forge call (its timeouts); rows not started within most of it go back unsent.
        """
        self.store = store
        self.clients = dict(clients)
        self.batch = batch
        self.lease = lease
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._row_backoff = Backoff(initial=backoff_base.total_seconds(), cap=backoff_cap.total_seconds())
        forge_backoff = Backoff(initial=backoff_base.total_seconds(), cap=forge_backoff_cap.total_seconds())
        # After a step that failed as a whole (the database unreachable, say).
        self._loop_backoff = Backoff(initial=2 * poll_interval, cap=backoff_cap.total_seconds())
        self.clock = clock
        self.poll_interval = poll_interval
        self.concurrency = max(1, concurrency)
        self.metrics = metrics
        lanes: dict[str, _Lane] = {}
        for repo, client in sorted(self.clients.items()):
            lane = lanes.setdefault(client.rate_key, _Lane(client.rate_key, client.forge, forge_backoff))
            lane.clients[repo] = client
        self.lanes = list(lanes.values())
        self._lane_of = {repo: lane for lane in self.lanes for repo in lane.clients}
        self._stop = threading.Event()

    # -- one step ------------------------------------------------------------------------------

    def backoff(self, attempts: int) -> dt.timedelta:
        """A row's own delay after its `attempts`-th sent attempt failed (1-based)."""
        return dt.timedelta(seconds=self._row_backoff.delay(max(attempts, 1)))

    def run_once(self, now: dt.datetime) -> int:
        """One step of every lane, one after the other; returns how many statuses reached the forges."""
        return sum(self._step(lane, now) for lane in self.lanes)

    def _step(self, lane: _Lane, now: dt.datetime) -> int:
        self.store.coalesce_outbox(now, repos=lane.repos)
        if lane.blocked_until(now) is not None:
            return 0
        # A forge that is down gets one request per try, not `concurrency`: the oldest status.
        limit = 1 if lane.is_down() else self.batch
        rows = self.store.claim_outbox(limit, now, self.lease, repos=lane.repos)
        claimed = time.monotonic()

        def handle(row: OutboxEntry) -> int:
            return self._handle(lane, row, now, claimed)

        if len(rows) <= 1 or self.concurrency == 1:
            return sum(map(handle, rows))
        return sum(self._executor(lane).map(handle, rows))

    def _executor(self, lane: _Lane) -> ThreadPoolExecutor:
        with lane.lock:
            if lane.pool is None:
                lane.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="forge-post")
            return lane.pool

    def close(self) -> None:
        """Stop the threads (if started) and the posting pools."""
        self.stop()
        for lane in self.lanes:
            with lane.lock:
                pool, lane.pool = lane.pool, None
            if pool is not None:
                pool.shutdown(wait=True)

    def _handle(self, lane: _Lane, row: OutboxEntry, now: dt.datetime, claimed: float) -> int:
        assert row.id is not None
        client = lane.clients[row.repo]
        # `attempts` counts this claim too: more than one means an earlier one may have landed.
        maybe_landed = row.attempts > 1
        unsent = "" if maybe_landed else NOT_SENT
        if lane.blocked_until(now) is not None:
            # Held back unsent. A rate limit's end is the forge's word, for every poster sharing
            # the token; a backoff is this lane's own: the row keeps its place in the queue, so
            # the forge's next try is for the oldest status, not the one that just failed.
            until = lane.paused(now) or row.next_attempt_at
            self.store.mark_failed(row.id, until, unsent + f"held back: {lane.why()}"[:2000], sent=False)
            return 0
        if time.monotonic() - claimed > _LEASE_SHARE * self.lease.total_seconds():
            self.store.mark_failed(row.id, now, unsent + "held back: the claim's lease ran short", sent=False)
            return 0
        status = CommitStatus(row.sha, row.context, row.state, row.description, row.target_url)
        try:
            if maybe_landed:
                found = self._on_forge(client, status)
                self._answered(lane, now)
                if found:
                    self._posted(lane, row, now)
                    log.info("commit status was already on the forge", extra=self._fields(row))
                    return 1
            client.post_status(status)
        except RateLimited as e:
            self._count(lane, "rate_limited")
            until = lane.pause(e.retry_at(now), str(e))
            self._fail(row, until, unsent + str(e), sent=False)
            return 0
        except PermanentForgeError as e:
            self._count(lane, "permanent")
            self._answered(lane, now)  # the forge is up: it refuses this one status
            self._fail(row, now + self.backoff_cap, REFUSED + str(e), sent=False, level=logging.ERROR)
            return 0
        except ForgeError as e:
            self._count(lane, "transient" if e.sent else "unreachable")
            down, retry_at = lane.failed(now, row.id, str(e), sent=e.sent)
            # A down forge: every row waits for its next try, whatever the row's own count. A
            # row that failed alone after it was sent waits its own backoff too.
            next_attempt = retry_at if down or not e.sent else max(retry_at, now + self.backoff(row.attempts))
            prefix = "" if e.sent else unsent
            self._fail(row, next_attempt, prefix + str(e), sent=e.sent, forge_down=down)
            return 0
        self._answered(lane, now)
        self._posted(lane, row, now)
        return 1

    def _posted(self, lane: _Lane, row: OutboxEntry, now: dt.datetime) -> None:
        assert row.id is not None
        self.store.mark_posted(row.id, now)
        if self.metrics is not None:
            self.metrics.forge_posts.labels(forge=lane.forge).inc()

    def _answered(self, lane: _Lane, now: dt.datetime) -> None:
        """The forge answered: its backoff ends, and after an outage its waiting rows are due now."""
        was_down, failures, since = lane.answered()
        if not was_down:
            return
        due = self.store.retry_outbox_now(lane.repos, now, unless_error_startswith=REFUSED)
        down = (now - since).total_seconds() if since is not None else 0.0
        log.warning(
            "forge answers again; its waiting statuses are due now",
            extra={"forge": lane.forge, "failed_calls": failures, "down_s": round(down, 1), "due": due},
        )

    def _count(self, lane: _Lane, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.forge_post_errors.labels(forge=lane.forge, kind=kind).inc()

    @staticmethod
    def _on_forge(client: StatusProvider, status: CommitStatus) -> bool:
        return any(s.context == status.context and s.state == status.state for s in client.list_statuses(status.sha))

    def _fail(
        self,
        row: OutboxEntry,
        next_attempt: dt.datetime,
        error: str,
        *,
        sent: bool,
        level: int = logging.WARNING,
        **extra: object,
    ) -> None:
        assert row.id is not None
        self.store.mark_failed(row.id, next_attempt, error[:2000], sent=sent)
        log.log(
            level,
            "commit status not posted: %s",
            error,
            extra={**self._fields(row), "retry_at": next_attempt, **extra},
        )

    @staticmethod
    def _fields(row: OutboxEntry) -> dict[str, object]:
        return {"repo": row.repo, "sha": row.sha, "context": row.context, "state": str(row.state)}

    # -- what waits ------------------------------------------------------------------------------

    def backlog(self, now: dt.datetime) -> list[ForgeBacklog]:
        """Per forge (every forge of this worker, waiting or not): statuses not posted yet."""
        pending: dict[str, int] = {lane.forge: 0 for lane in self.lanes}
        oldest: dict[str, dt.datetime] = {}
        errors: dict[str, str] = {}
        for lane in self.lanes:
            with lane.lock:
                if lane.last_error:
                    errors[lane.forge] = lane.last_error
        for waiting in self.store.outbox_backlog():
            found = self._lane_of.get(waiting.repo)
            if found is None:  # a repo no longer configured with a forge: nobody posts it
                continue
            pending[found.forge] += waiting.pending
            first = oldest.get(found.forge)
            oldest[found.forge] = waiting.oldest_created_at if first is None else min(first, waiting.oldest_created_at)
        return [
            ForgeBacklog(
                forge,
                count,
                max(dt.timedelta(0), now - oldest[forge]) if forge in oldest else dt.timedelta(0),
                errors.get(forge),
            )
            for forge, count in sorted(pending.items())
        ]

    def gauge(self, now: dt.datetime) -> list[ForgeBacklog]:
        """Set `reconciler_outbox_pending` and `..._oldest_pending_seconds` from `backlog(now)`."""
        backlog = self.backlog(now)
        if self.metrics is not None:
            for b in backlog:
                self.metrics.outbox_pending.labels(forge=b.forge).set(b.pending)
                self.metrics.outbox_oldest_pending.labels(forge=b.forge).set(b.oldest.total_seconds())
        return backlog

    # -- the daemon's threads --------------------------------------------------------------------

    def wake(self) -> None:
        """Post now rather than at the next poll (call after queueing a status)."""
        for lane in self.lanes:
            lane.wake.set()

    def start(self) -> None:
        self._stop.clear()
        for i, lane in enumerate(self.lanes):
            if lane.thread is None:
                lane.thread = threading.Thread(target=self._loop, args=(lane,), name=f"forge-outbox-{i}", daemon=True)
                lane.thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for lane in self.lanes:
            lane.wake.set()
        for lane in self.lanes:
            if lane.thread is not None:
                lane.thread.join(timeout)
                lane.thread = None

    def _loop(self, lane: _Lane) -> None:
        failures = 0
        while not self._stop.is_set():
            lane.wake.clear()
            was_down = lane.is_down()
            try:
                done = self._step(lane, self.clock())
                failures = 0
            except Exception:  # the DB is unreachable, say: keep the thread, back off
                failures += 1
                log.exception("outbox step failed", extra={"forge": lane.forge})
                self._stop.wait(self._loop_backoff.delay(failures))
                continue
            recovered = was_down and not lane.is_down()  # the probe got through: drain at once
            if done < self.batch and not recovered:
                lane.wake.wait(self.poll_interval)
