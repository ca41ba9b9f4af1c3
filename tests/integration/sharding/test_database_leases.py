"""Members and repo leases in PostgreSQL (`sharding.mode: database`), on a real server.

Every rule the shard relies on is tried here against the database itself: one holder per lease,
a generation that grows at each acquisition, leases that go free when their holder's membership
lapses (by the database's clock) or is ended, an identity two live processes cannot share, and a
fence that keeps the lease from being taken while the write it allowed is being committed.
"""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.tracking import Store
from tests.infra.wait import wait_until

pytestmark = pytest.mark.postgres

T0 = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
REPOS = ["a", "b", "c"]


def test_a_member_takes_free_leases_once_and_the_generation_grows(pg_store: Store) -> None:
    assert pg_store.join_shard("r1", "r1#x", 30)
    assert pg_store.acquire_leases("r1#x", REPOS) == {"a": 1, "b": 1, "c": 1}
    assert pg_store.join_shard("r2", "r2#y", 30)
    assert pg_store.acquire_leases("r2#y", REPOS) == {}  # held by a live member
    pg_store.release_leases("r1#x", {"b": 1})
    assert pg_store.acquire_leases("r2#y", REPOS) == {"b": 2}
    assert [(r.repo, r.holder, r.generation) for r in pg_store.repo_leases()] == [
        ("a", "r1#x", 1),
        ("b", "r2#y", 2),
        ("c", "r1#x", 1),
    ]
    assert pg_store.holds_lease("b", "r2#y", 2)
    assert not pg_store.holds_lease("b", "r1#x", 1)


def test_release_at_an_old_generation_releases_nothing(pg_store: Store) -> None:
    assert pg_store.join_shard("r1", "r1#x", 30)
    assert pg_store.acquire_leases("r1#x", ["a"]) == {"a": 1}
    pg_store.release_leases("r1#x", {"a": 1})
    assert pg_store.acquire_leases("r1#x", ["a"]) == {"a": 2}
    pg_store.release_leases("r1#x", {"a": 1})  # a late release of the earlier lease
    assert pg_store.holds_lease("a", "r1#x", 2)


def test_only_live_members_take_leases(pg_store: Store) -> None:
    assert pg_store.acquire_leases("ghost#z", ["a"]) == {}  # never joined
    assert pg_store.join_shard("r1", "r1#x", 0.2)
    wait_until(lambda: not pg_store.live_members(), what="r1's membership to lapse")
    assert pg_store.acquire_leases("r1#x", ["a"]) == {}


def test_leases_of_a_lapsed_member_go_free_by_the_database_clock(pg_store: Store) -> None:
    assert pg_store.join_shard("r1", "r1#x", 1)
    assert pg_store.acquire_leases("r1#x", REPOS) == {"a": 1, "b": 1, "c": 1}
    assert pg_store.join_shard("r2", "r2#y", 30)
    assert pg_store.acquire_leases("r2#y", REPOS) == {}
    got = wait_until(lambda: pg_store.acquire_leases("r2#y", REPOS), what="r1's leases to go free")
    assert got == {"a": 2, "b": 2, "c": 2}
    assert [m.identity for m in pg_store.live_members()] == ["r2"]
    # r1 wakes up and renews: it is a member again, but holds nothing.
    assert pg_store.join_shard("r1", "r1#x", 30)
    assert not pg_store.holds_lease("a", "r1#x", 1)
    assert pg_store.acquire_leases("r1#x", REPOS) == {}


def test_leaving_frees_every_lease_at_once(pg_store: Store) -> None:
    assert pg_store.join_shard("r1", "r1#x", 30)
    pg_store.acquire_leases("r1#x", REPOS)
    assert pg_store.join_shard("r2", "r2#y", 30)
    pg_store.leave_shard("r1", "r1#x")
    assert [m.identity for m in pg_store.live_members()] == ["r2"]
    assert pg_store.acquire_leases("r2#y", REPOS) == {"a": 2, "b": 2, "c": 2}


def test_a_second_live_process_cannot_use_the_same_identity(pg_store: Store) -> None:
    assert pg_store.join_shard("pod-a", "pod-a#first", 1)
    assert pg_store.acquire_leases("pod-a#first", ["a"]) == {"a": 1}
    assert not pg_store.join_shard("pod-a", "pod-a#second", 30)
    # Once the first one's membership lapses, a restarted process takes the identity, and the
    # leases the first held are free for it (with a new generation), never silently inherited.
    wait_until(lambda: pg_store.join_shard("pod-a", "pod-a#second", 30), what="the identity to be free")
    assert not pg_store.holds_lease("a", "pod-a#first", 1)
    assert pg_store.acquire_leases("pod-a#second", ["a"]) == {"a": 2}


def test_the_fence_keeps_the_lease_until_the_write_it_allowed_commits(pg_store: Store) -> None:
    """A holder's check inside its transaction share-locks the lease row: a replica that would
    take the lease (its holder's membership just lapsed) skips the row until that transaction
    ends, then takes it; so nothing the old holder committed was written after the takeover."""
    assert pg_store.join_shard("r1", "r1#x", 1)
    assert pg_store.acquire_leases("r1#x", ["a"]) == {"a": 1}
    assert pg_store.join_shard("r2", "r2#y", 30)
    with pg_store.unit_of_work() as tx:
        assert pg_store.holds_lease("a", "r1#x", 1, session=tx)
        pg_store.ensure_repo("a", "u", "main", T0, session=tx)  # the write the fence allowed
        wait_until(lambda: not any(m.identity == "r1" for m in pg_store.live_members()), what="r1 to lapse")
        assert pg_store.acquire_leases("r2#y", ["a"]) == {}  # skipped: locked by r1's transaction
    assert pg_store.acquire_leases("r2#y", ["a"]) == {"a": 2}
    # And r1's next check, in its next transaction, says no.
    with pg_store.unit_of_work() as tx:
        assert not pg_store.holds_lease("a", "r1#x", 1, session=tx)


def test_two_replicas_racing_for_the_same_repos_split_them_without_overlap(pg_url: str) -> None:
    """Both take at once: every repo goes to exactly one of them."""
    import threading

    stores = [Store.open(pg_url), Store.open(pg_url)]
    repos = [f"r{i}" for i in range(50)]
    try:
        for i, s in enumerate(stores):
            assert s.join_shard(f"m{i}", f"m{i}#t", 30)
        results: list[dict[str, int]] = [{}, {}]
        start = threading.Barrier(2)

        def take(i: int) -> None:
            start.wait()
            for _ in range(5):
                results[i].update(stores[i].acquire_leases(f"m{i}#t", repos))

        threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not set(results[0]) & set(results[1])
        assert set(results[0]) | set(results[1]) == set(repos)
        holders = {row.repo: row.holder for row in stores[0].repo_leases()}
        assert holders == {repo: f"m{i}#t" for i in range(2) for repo in results[i]}
    finally:
        for s in stores:
            s.close()


def test_handoffs_are_taken_once_by_the_owner_and_wake_a_listener(pg_store: Store) -> None:
    listener = pg_store.handoff_listener()
    try:
        assert listener.wait(0.05) == []  # connects and listens; nothing yet
        pg_store.hand_off("a", "push", {}, "r2", T0)
        pg_store.hand_off("b", "pull_request", {"number": 7}, "r2", T0)
        assert "a" in listener.wait(5.0)
        assert [h.repo for h in pg_store.take_handoffs(["a"])] == ["a"]
        assert pg_store.take_handoffs(["a"]) == []
        [b] = pg_store.take_handoffs(["a", "b"])
        assert (b.kind, b.payload, b.sender) == ("pull_request", {"number": 7}, "r2")
        assert pg_store.prune_handoffs(T0 + dt.timedelta(seconds=1)) == 0
    finally:
        listener.close()
