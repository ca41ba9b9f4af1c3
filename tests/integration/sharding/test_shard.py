"""Three replicas' shards over one PostgreSQL (`DatabaseLeases`), driven round by round.

Each test plays what replicas do (rounds of `step()`), and what they suffer: a replica that stops
renewing (killed, paused, cut off) and one that comes back. After each: every repo has exactly
one owner, the owners are the ones rendezvous names among the live members, and a replica whose
membership lapsed refuses to act (`check` raises NotOwner) before anyone else may take its repos.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from reconciler.metrics import Metrics
from reconciler.sharding import DatabaseLeases, NotOwner, Shard, assign
from reconciler.tracking import Store
from tests.e2e.harness import metric
from tests.infra.wait import wait_until

pytestmark = pytest.mark.postgres

REPOS = [f"repo-{i:02d}" for i in range(30)]
LEASE = 1.5


def make(store: Store, name: str, metrics: Metrics | None = None) -> Shard:
    return Shard(DatabaseLeases(store, name, f"{name}#{id(store)}", LEASE), REPOS, lease_seconds=LEASE, metrics=metrics)


def rounds(*shards: Shard, times: int = 2) -> None:
    for _ in range(times):
        for shard in shards:
            shard.step()


def owners(shards: list[Shard]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {repo: [] for repo in REPOS}
    for shard in shards:
        for repo in shard.owned():
            found[repo].append(shard.identity)
    return found


def settled(shards: list[Shard], live: list[Shard]) -> bool:
    """Every repo owned once, by the member rendezvous names among `live`."""
    want = assign(REPOS, [s.identity for s in live])
    return owners(shards) == {repo: [want[repo]] for repo in REPOS}


@pytest.fixture
def stores(pg_url: str) -> Iterator[list[Store]]:
    made = [Store.open(pg_url) for _ in range(3)]  # one connection pool per replica, as processes have
    try:
        yield made
    finally:
        for s in made:
            s.close()


def test_three_replicas_share_the_repos_as_rendezvous_says(stores: list[Store]) -> None:
    metrics = Metrics()
    shards = [make(stores[0], "a", metrics), make(stores[1], "b"), make(stores[2], "c")]
    rounds(*shards)
    wait_until(lambda: rounds(*shards, times=1) or settled(shards, shards), what="the repos to settle")
    counts = [len(s.owned()) for s in shards]
    assert sum(counts) == len(REPOS) and min(counts) >= 5, counts
    assert all(s.members() == ["a", "b", "c"] for s in shards)
    exposed = metrics.exposition().decode()
    assert "reconciler_shard_members 3.0" in exposed
    owned_lines = [line for line in exposed.splitlines() if line.startswith("reconciler_repo_owned{")]
    assert len(owned_lines) == len(REPOS)
    assert sum(line.endswith(" 1.0") for line in owned_lines) == counts[0]


def test_a_replica_that_stops_renewing_loses_its_repos_to_the_others_only(stores: list[Store]) -> None:
    shards = [make(stores[0], "a"), make(stores[1], "b"), make(stores[2], "c")]
    wait_until(lambda: rounds(*shards, times=1) or settled(shards, shards), what="the repos to settle")
    dead = shards[2]
    before = {repo: owner for repo, [owner] in owners(shards).items()}
    kept = {repo for repo, owner in before.items() if owner != "c"}
    # "c" is killed: it never runs another round. It stops acting on its own, first...
    wait_until(lambda: not dead.owned(), what="c to stop acting")
    with pytest.raises(NotOwner, match="not renewed in time"):
        dead.check(next(r for r, o in before.items() if o == "c"))
    # ... and the others take its repos, and only those.
    live = shards[:2]
    wait_until(lambda: rounds(*live, times=1) or settled(live, live), what="a and b to take c's repos")
    assert all(owners(live)[repo] == [before[repo]] for repo in kept)


def test_a_replica_paused_past_its_lease_comes_back_acting_on_nothing_until_it_owns_again(
    stores: list[Store],
) -> None:
    shards = [make(stores[0], "a"), make(stores[1], "b"), make(stores[2], "c")]
    wait_until(lambda: rounds(*shards, times=1) or settled(shards, shards), what="the repos to settle")
    paused = shards[0]
    held = dict(paused.owned())
    live = shards[1:]
    wait_until(lambda: rounds(*live, times=1) or settled(shards, live), what="b and c to take a's repos")
    # It wakes up: nothing it held is its own, not even after it renews its membership.
    for repo in held:
        with pytest.raises(NotOwner):
            paused.check(repo)
    paused.step()
    assert paused.owned() == {}
    # Rendezvous gives its repos back to it: the others give them back, it takes them anew.
    wait_until(lambda: rounds(*shards, times=1) or settled(shards, shards), what="a to own its repos again")
    assert all(gen > held[repo] for repo, gen in paused.owned().items())
    for repo in paused.owned():
        paused.check(repo)  # does not raise


def test_a_repo_being_reconciled_is_given_back_only_when_that_ends(stores: list[Store]) -> None:
    a = make(stores[0], "a")
    wait_until(lambda: rounds(a, times=1) or settled([a], [a]), what="a to own everything")
    b = make(stores[1], "b")
    busy_repo = next(repo for repo, who in assign(REPOS, ["a", "b"]).items() if who == "b")
    reconciling = {busy_repo}

    @contextlib.contextmanager
    def busy(repo: str) -> Iterator[bool]:
        yield repo not in reconciling

    a.busy = busy
    wait_until(
        lambda: (
            rounds(a, b, times=1)
            or set(b.owned()) == {r for r, w in assign(REPOS, ["a", "b"]).items() if w == "b"} - {busy_repo}
        ),
        what="b to take all but the busy repo",
    )
    rounds(a, b)
    assert a.owns(busy_repo) and not b.owns(busy_repo)
    reconciling.clear()
    wait_until(lambda: rounds(a, b, times=1) or settled([a, b], [a, b]), what="the busy repo to move")


def test_a_new_replica_waits_a_round_before_taking_anything(stores: list[Store]) -> None:
    """So replicas started together see each other before they take repos."""
    acquired: list[list[str]] = []
    a = make(stores[0], "a")
    a.on_acquired = acquired.append
    a.step()
    assert a.owned() == {} and acquired == []
    wait_until(lambda: a.step() or a.owned(), what="a to take repos")
    assert sorted(acquired[0]) == REPOS


def test_renewal_failures_are_counted_and_the_lease_lapses(pg_url: str) -> None:
    metrics = Metrics()
    store = Store.open(pg_url)
    shard = make(store, "a", metrics)
    wait_until(lambda: shard.step() or shard.owned(), what="a to take repos")
    store.close()
    shard.leases = DatabaseLeases(Store.open("postgresql+psycopg://nobody@127.0.0.1:1/none"), "a", "a#1", LEASE)
    shard.step()
    assert "reconciler_lease_renew_errors_total 1.0" in metrics.exposition().decode()
    wait_until(lambda: shard.step() or not shard.owned(), what="the lease to lapse")
    assert 'reconciler_repo_owned{repo="repo-00"} 0.0' in metrics.exposition().decode()


def test_stopping_gives_the_repos_back_at_once(stores: list[Store]) -> None:
    a, b = make(stores[0], "a"), make(stores[1], "b")
    wait_until(lambda: rounds(a, b, times=1) or settled([a, b], [a, b]), what="a and b to settle")
    a.stop(leave=True)
    b.step()  # one round, no lease to wait for
    b.step()
    assert set(b.owned()) == set(REPOS)


def test_the_owned_gauge_reads_1_before_the_daemon_is_told_it_took_a_repo(stores: list[Store]) -> None:
    """The hand-over (`on_acquired`) may run a while; the gauge must not lag behind the fence."""
    metrics = Metrics()
    shard = make(stores[0], "a", metrics)
    seen: dict[str, float] = {}

    def acquired(repos: list[str]) -> None:
        exposed = metrics.exposition().decode()
        for repo in repos:
            seen[repo] = metric(exposed, "reconciler_repo_owned", repo=repo)

    shard.on_acquired = acquired
    wait_until(lambda: rounds(shard, times=1) or len(shard.owned()) == len(REPOS), what="a to own every repo")
    assert seen == dict.fromkeys(REPOS, 1.0)
