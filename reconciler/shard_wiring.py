"""How the daemon meets the other replicas: its share of the repos and the hand-offs between them.

The sharding package knows leases and rows; the daemon knows repos, work items and pull requests.
This module is the seam, as `forge_wiring` is for the forges: it builds the shard over the
configured lease store, tells the daemon which repos (and runs) are its own, and turns work that
reached this replica for another one's repo into hand-offs (a push or pull-request webhook, an
API retry) and hand-offs back into the daemon's calls.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reconciler.config import Settings
from reconciler.forge import PullRequestEvent
from reconciler.metrics import Metrics
from reconciler.model import RunRequest
from reconciler.sharding import (
    MEMBERS,
    DatabaseLeases,
    HandoffPump,
    LeaseStore,
    Shard,
    default_identity,
    holder_of,
)
from reconciler.tracking import Handoff, Point, Store

if TYPE_CHECKING:
    from reconciler.model import LogSlice
    from reconciler.server.api import RunControl

log = logging.getLogger(__name__)

PUSH, PULL_REQUEST, RETRY = "push", "pull_request", "retry"


@dataclasses.dataclass
class Delivery:
    """What the daemon does with work handed to it (set by `ShardWiring.bind`)."""

    push: Callable[[str], object]
    pull_request: Callable[[str, PullRequestEvent], None]
    retry: Callable[[str], None]


class ShardWiring:
    def __init__(self, shard: Shard, store: Store, *, clock: Callable[[], datetime]) -> None:
        self.shard = shard
        self.store = store
        self.clock = clock
        self.identity = shard.identity
        self.pump = HandoffPump(store, lambda: list(shard.owned()), self._deliver, clock=clock, on_members=shard.poke)
        # A replica that joins or leaves says so: the others look at once, not at their next round.
        shard.on_membership = lambda: store.announce(MEMBERS)
        self._delivery: Delivery | None = None
        self._run_repos: OrderedDict[str, str] = OrderedDict()  # run name -> repo (names never move)
        self._cache_lock = threading.Lock()

    # --- ownership --------------------------------------------------------------------------------

    def owns(self, repo: str) -> bool:
        return self.shard.owns(repo)

    def owns_run(self, run: str) -> bool:
        """Whether this replica owns the repo of `run` (False for a run the database does not know)."""
        with self._cache_lock:
            repo = self._run_repos.get(run)
        if repo is None:
            repo = self.store.repos_of_runs([run]).get(run)
            if repo is None:
                return False
            with self._cache_lock:
                self._run_repos[run] = repo
                while len(self._run_repos) > 10_000:
                    self._run_repos.popitem(last=False)
        return self.owns(repo)

    def owned_runs(self, runs: Iterable[str]) -> list[str]:
        names = list(runs)
        repos = self.store.repos_of_runs(names)
        return [name for name in names if self.owns(repos.get(name, ""))]

    # --- hand-offs --------------------------------------------------------------------------------

    def hand_off(self, repo: str, kind: str, payload: dict[str, Any] | None = None) -> None:
        self.store.hand_off(repo, kind, payload or {}, self.identity, self.clock())
        log.info("handed off to the repo's owner", extra={"repo": repo, "kind": kind})

    def hand_off_pull_request(self, repo: str, event: PullRequestEvent) -> None:
        self.hand_off(repo, PULL_REQUEST, dataclasses.asdict(event))

    def _deliver(self, row: Handoff) -> None:
        delivery = self._delivery
        if delivery is None:
            raise RuntimeError("hand-offs arrived before the daemon was bound")
        if row.kind == PUSH:
            delivery.push(row.repo)
        elif row.kind == PULL_REQUEST:
            payload = dict(row.payload)
            payload["projects"] = tuple(payload.get("projects") or ())
            delivery.pull_request(row.repo, PullRequestEvent(**payload))
        elif row.kind == RETRY:
            delivery.retry(str(row.payload.get("run", "")))
        else:
            log.warning("unknown hand-off kind %r dropped", row.kind, extra={"repo": row.repo})

    def runs(self, runs: RunControl, retry_request: Callable[[str], RunRequest]) -> RunControl:
        """The read API's view of the runs: a retry of another replica's run is handed to it."""
        return _ShardedRuns(runs, retry_request, self)

    # --- life -------------------------------------------------------------------------------------

    def bind(
        self,
        delivery: Delivery,
        *,
        on_acquired: Callable[[list[str]], None],
        busy: Callable[[str], AbstractContextManager[bool]],
    ) -> None:
        self._delivery = delivery

        def acquired(repos: list[str]) -> None:
            on_acquired(repos)
            self.pump.drain()  # what others handed over while nobody owned these repos

        self.shard.on_acquired = acquired
        self.shard.busy = busy

    def start(self) -> None:
        self.shard.start()
        self.pump.start()

    @property
    def alive(self) -> bool:
        return self.shard.alive and self.pump.alive

    def stop(self) -> None:
        self.pump.stop()
        self.shard.stop(leave=True)


class _ShardedRuns:
    def __init__(self, runs: RunControl, retry_request: Callable[[str], RunRequest], wiring: ShardWiring) -> None:
        self._runs = runs
        self._retry_request = retry_request
        self._wiring = wiring

    def logs(self, run_name: str, tail: int | None = None) -> str:
        return self._runs.logs(run_name, tail)

    def log_chunks(self, run_name: str) -> Iterable[bytes]:
        return self._runs.log_chunks(run_name)

    def read_log(self, run_name: str, offset: int, limit: int) -> LogSlice:
        return self._runs.read_log(run_name, offset, limit)

    def stop(self, run_name: str) -> None:
        self._runs.stop(run_name)

    def report(self, run_name: str, points: Sequence[Point], outputs: Mapping[str, Any], now: datetime) -> int:
        return self._runs.report(run_name, points, outputs, now)

    def outputs_of(self, run_name: str) -> Mapping[str, Any]:
        return self._runs.outputs_of(run_name)

    def retry(self, run_name: str, now: datetime) -> str:
        repo = self._wiring.store.repos_of_runs([run_name]).get(run_name)
        if repo is None or self._wiring.owns(repo):
            return self._runs.retry(run_name, now)
        request = self._retry_request(run_name)  # 404 and 409 are answered here
        self._wiring.hand_off(repo, RETRY, {"run": run_name})
        return request.name


def build_shard_wiring(
    settings: Settings,
    store: Store,
    metrics: Metrics,
    *,
    instance: str,
    kube_api: Any | None,
    clock: Callable[[], datetime],
) -> ShardWiring:
    """The shard over the configured lease store (settings.sharding must be set)."""
    sharding = settings.sharding
    assert sharding is not None
    identity = sharding.identity or default_identity()
    holder = holder_of(identity)
    leases: LeaseStore
    if sharding.mode == "database":
        leases = DatabaseLeases(store, identity, holder, sharding.lease_seconds)
    else:
        from reconciler.sharding.kubernetes import KubernetesLeases

        if kube_api is None:
            raise ValueError("sharding.mode kubernetes needs a Kubernetes API client")
        leases = KubernetesLeases(
            kube_api,
            namespace=settings.kubernetes.namespace,
            instance=instance,
            identity=identity,
            holder=holder,
            lease_seconds=sharding.lease_seconds,
        )
    shard = Shard(
        leases,
        [r.name for r in settings.repos],
        lease_seconds=sharding.lease_seconds,
        metrics=metrics,
        # Kubernetes would keep renewing for a replica cut off from the database, which can do
        # nothing: its repos go to the others instead. (The database mode renews there anyway.)
        usable=store.ping if sharding.mode == "kubernetes" else None,
    )
    log.info("sharding", extra={"mode": sharding.mode, "identity": identity, "lease_seconds": sharding.lease_seconds})
    return ShardWiring(shard, store, clock=clock)


__all__ = ["PULL_REQUEST", "PUSH", "RETRY", "Delivery", "ShardWiring", "build_shard_wiring"]
