"""Leases in the tracking PostgreSQL (`sharding.mode: database`): rows, not objects.

Membership is a `shard_member` row renewed with the database's clock; a repo lease is a
`repo_lease` row held while its holder's membership lives (see `reconciler.tracking.leases`).
The fence is a read of the lease row, `FOR SHARE`, in the transaction of the write it guards.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from reconciler.tracking import Store


class DatabaseLeases:
    def __init__(self, store: Store, identity: str, holder: str, lease_seconds: float) -> None:
        self.store = store
        self.identity = identity
        self.holder = holder
        self.lease_seconds = lease_seconds
        self._rounds = 0
        self.next_expiry: float | None = None

    def join(self) -> bool:
        joined = self.store.join_shard(self.identity, self.holder, self.lease_seconds)
        self._rounds += 1
        if self._rounds % 720 == 0:  # now and then, forget replicas gone for a day
            self.store.forget_members(86400)
        return joined

    def members(self) -> list[str]:
        self.next_expiry = None  # unknown until the members are read
        live = self.store.live_members()
        others = [m.expires_in for m in live if m.identity != self.identity]
        self.next_expiry = min(others) if others else None
        return [m.identity for m in live]

    def acquire(self, repos: Collection[str]) -> dict[str, int]:
        return self.store.acquire_leases(self.holder, repos)

    def release(self, leases: Mapping[str, int]) -> None:
        self.store.release_leases(self.holder, leases)

    def leave(self, leases: Mapping[str, int]) -> None:
        self.store.leave_shard(self.identity, self.holder)

    def check(self, repo: str, generation: int, session: Any | None) -> bool:
        return self.store.holds_lease(repo, self.holder, generation, session=session)


__all__ = ["DatabaseLeases"]
