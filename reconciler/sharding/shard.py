"""One replica's share of the repos: membership, the repo leases it holds, and the fence.

Every `lease_seconds / 3` the replica renews its membership, reads the live members, works out
with rendezvous hashing which repos are its own, takes the free leases of those it does not hold
yet and gives back those now meant for another member once their in-flight work has ended
(`busy`). A lease is only taken when rendezvous names this replica and the lease is free (released,
or its holder's membership lapsed), so a repo never has two holders; a repo whose lease another
live member still holds waits for it to be given back.

The fence (`check`) is what makes a replica that was paused or cut off harmless: it refuses a repo
unless this replica holds its lease now, by two tests. Locally, the last renewal must have been
*sent* less than 0.9 x `lease_seconds` ago (the others only take its repos once `lease_seconds`
passed after that renewal reached the store, so this replica stops first). Then the lease store's
own check: in `database` mode a read of the lease row inside the caller's transaction, which holds
the row until the write it allows is committed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from reconciler.metrics import Metrics
from reconciler.sharding.rendezvous import owner

log = logging.getLogger(__name__)

# A holder stops acting on its repos this fraction of lease_seconds after its last renewal was sent.
VALIDITY = 0.9


class NotOwner(Exception):
    """This replica does not hold the repo's lease (any more): another replica acts on it."""

    def __init__(self, repo: str, why: str = "another replica owns it") -> None:
        self.repo = repo
        super().__init__(f"repo {repo}: not owned by this replica ({why})")


class LeaseStore(Protocol):
    """Where members and repo leases live: Kubernetes Leases or the tracking database."""

    identity: str  # the replica's name (rendezvous hashes it)
    holder: str  # the identity plus a token of this process (what leases name)
    # Seconds from the last `members()` until the first other member's lease runs out (None: no other).
    next_expiry: float | None

    def join(self) -> bool:
        """Write or renew this replica's membership; False while another live process uses the identity."""
        ...

    def members(self) -> list[str]:
        """Identities of the live members (this one included once joined)."""
        ...

    def acquire(self, repos: Collection[str]) -> dict[str, int]:
        """Take the free leases among `repos`: repo -> generation (the fencing token)."""
        ...

    def release(self, leases: Mapping[str, int]) -> None:
        """Give back leases held at these generations."""
        ...

    def leave(self, leases: Mapping[str, int]) -> None:
        """Release these (and any other lease of this holder) and end the membership."""
        ...

    def check(self, repo: str, generation: int, session: Any | None) -> bool:
        """Whether the lease is still this holder's at `generation` (in the caller's transaction
        when the store can)."""
        ...


def _always_idle(repo: str) -> AbstractContextManager[bool]:
    return contextlib.nullcontext(True)


class Shard:
    def __init__(
        self,
        leases: LeaseStore,
        repos: Sequence[str],
        *,
        lease_seconds: float,
        metrics: Metrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        usable: Callable[[], None] | None = None,
    ) -> None:
        """`usable` raises when this replica cannot do its work (the `kubernetes` mode asks the
        tracking database): it then stops renewing, and its repos go to replicas that can."""
        self.usable = usable
        self.leases = leases
        self.identity = leases.identity
        self.repos = list(repos)
        self.lease_seconds = lease_seconds
        self.metrics = metrics
        self.monotonic = monotonic
        # What the daemon plugs in: repos just acquired, and a try-lock on a repo's in-flight work.
        self.on_acquired: Callable[[list[str]], None] = lambda repos: None
        self.busy: Callable[[str], AbstractContextManager[bool]] = _always_idle
        # Told when this replica joins (or comes back) and when it leaves: the others may look now.
        self.on_membership: Callable[[], None] = lambda: None
        self._owned: dict[str, int] = {}
        self._to_release: dict[str, int] = {}  # given up here, not yet confirmed by the store
        self._members: list[str] = []
        self._valid_until = float("-inf")
        self._member_since: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return self.lease_seconds / 3

    # --- what the rest of the daemon asks ---------------------------------------------------------

    def owns(self, repo: str) -> bool:
        with self._lock:
            return repo in self._owned and self.monotonic() < self._valid_until

    def owned(self) -> dict[str, int]:
        """The repos held now, with their generation."""
        with self._lock:
            if self.monotonic() >= self._valid_until:
                return {}
            return dict(self._owned)

    def members(self) -> list[str]:
        with self._lock:
            return list(self._members)

    def check(self, repo: str, session: Any | None = None) -> None:
        """The fence: raise NotOwner unless this replica holds `repo`'s lease now."""
        with self._lock:
            generation = self._owned.get(repo)
            valid = self.monotonic() < self._valid_until
        if generation is None:
            raise NotOwner(repo)
        if not valid:
            raise NotOwner(repo, "its membership was not renewed in time")
        if not self.leases.check(repo, generation, session):
            with self._lock:
                if self._owned.get(repo) == generation:
                    del self._owned[repo]
            self._publish()
            raise NotOwner(repo, f"its lease moved on from generation {generation}")

    # --- one round --------------------------------------------------------------------------------

    def step(self) -> None:
        """Renew, read the members, give back and take leases; publish the metrics."""
        sent = self.monotonic()
        try:
            if self.usable is not None:
                self.usable()
            joined: bool | None = self.leases.join()
        except Exception as e:
            joined = None
            self._renew_failed(f"{type(e).__name__}: {e}")
        lost: list[str] = []
        with self._lock:
            if self.monotonic() >= self._valid_until:
                # The membership lapsed before this renewal came back (paused, cut off, slow): the
                # others may have taken any of our repos meanwhile, so none is ours any more, and
                # we wait a round again before taking any.
                lost = sorted(self._owned)
                self._owned.clear()
                self._member_since = None
            came = False
            if joined:
                self._valid_until = sent + VALIDITY * self.lease_seconds
                if self._member_since is None:
                    self._member_since = sent
                    came = True
            valid = self.monotonic() < self._valid_until
        if joined is False:
            self._renew_failed(f"another live replica uses the identity {self.identity!r}")
        if came:
            self._announce()
        if lost:
            log.warning("membership not renewed in time: no longer acting on %d repos", len(lost))
        if not joined or not valid:
            # Not renewed this round: keep what is still valid, take and give back nothing.
            self._publish()
            return
        try:
            members = self.leases.members()
        except Exception as e:
            self._renew_failed(f"reading the members: {type(e).__name__}: {e}")
            self._publish()
            return
        if self.identity not in members:
            members = sorted([*members, self.identity])
        with self._lock:
            self._members = members
        wanted = {repo for repo in self.repos if owner(repo, members) == self.identity}
        self._give_back(wanted)
        with self._lock:
            settled = self._member_since is not None and sent - self._member_since >= VALIDITY * self.interval
            missing = wanted - set(self._owned) - set(self._to_release)
        if settled and missing:
            self._take(missing)
        self._publish()

    def _give_back(self, wanted: set[str]) -> None:
        with self._lock:
            others = sorted(set(self._owned) - wanted)
        for repo in others:
            with self.busy(repo) as idle:
                if not idle:
                    continue  # a reconcile of it is running: give it back when that ends
                with self._lock:
                    generation = self._owned.pop(repo, None)
                    if generation is not None:
                        self._to_release[repo] = generation
        with self._lock:
            pending = dict(self._to_release)
        if not pending:
            return
        try:
            self.leases.release(pending)
        except Exception as e:
            log.warning("giving back %d repo leases failed; retrying: %s", len(pending), e)
            return
        with self._lock:
            for repo in pending:
                self._to_release.pop(repo, None)
        log.info("gave back repos to other replicas", extra={"repos": sorted(pending)})

    def _take(self, missing: set[str]) -> None:
        try:
            got = self.leases.acquire(missing)
        except Exception as e:
            log.warning("taking %d repo leases failed; retrying: %s", len(missing), e)
            return
        if not got:
            return
        with self._lock:
            self._owned.update(got)
        # Published before the hand-over below, which may take a while: the gauge says who owns a
        # repo from the moment the fence lets this replica act on it.
        self._publish()
        log.info("took repos", extra={"repos": sorted(got), "members": len(self._members)})
        try:
            self.on_acquired(sorted(got))
        except Exception:
            log.exception("handling newly owned repos failed")

    def _announce(self) -> None:
        try:
            self.on_membership()
        except Exception as e:  # the others notice at their next round anyway
            log.debug("announcing a membership change failed: %s", e)

    def _renew_failed(self, why: str) -> None:
        if self.metrics is not None:
            self.metrics.lease_renew_errors.inc()
        log.warning("renewing the shard membership failed: %s", why)

    def _publish(self) -> None:
        if self.metrics is None:
            return
        owned = self.owned()
        for repo in self.repos:
            self.metrics.repo_owned.labels(repo=repo).set(1 if repo in owned else 0)
        self.metrics.shard_members.set(len(self.members()))

    # --- the thread -------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="shard", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Run a round now rather than at the next interval."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = self.monotonic()
            try:
                self.step()
            except Exception:  # a round never ends the thread
                log.exception("a shard round failed")
            wait = self.interval - (self.monotonic() - started)
            expiry = getattr(self.leases, "next_expiry", None)
            if expiry is not None:
                # Look again just as another member's lease runs out, not up to a round later.
                wait = min(wait, max(0.1, expiry - (self.monotonic() - started) + 0.05))
            self._wake.wait(max(0.0, wait))
            self._wake.clear()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, *, leave: bool = True) -> None:
        """Stop renewing; `leave` gives every lease back and ends the membership at once, so the
        others take the repos now rather than after `lease_seconds`."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            held = {**self._owned, **self._to_release}
            self._owned.clear()
            self._to_release.clear()
            self._valid_until = float("-inf")
        if leave:
            try:
                self.leases.leave(held)
            except Exception as e:
                log.warning("leaving the shard failed (the others take its repos when its lease lapses): %s", e)
            else:
                self._announce()
        self._publish()


__all__ = ["VALIDITY", "LeaseStore", "NotOwner", "Shard"]
