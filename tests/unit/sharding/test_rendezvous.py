"""Rendezvous hashing: every replica computes the same owners, evenly, and a join or a loss moves
only the repos it must."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from reconciler.sharding import assign, owner
from reconciler.sharding.rendezvous import score

REPOS = [f"repo-{i:03d}" for i in range(300)]
MEMBERS = ["reconciler-7d9f-a", "reconciler-7d9f-b", "reconciler-7d9f-c"]


def test_the_owner_does_not_depend_on_the_order_members_are_listed() -> None:
    for repo in REPOS[:50]:
        assert owner(repo, MEMBERS) == owner(repo, list(reversed(MEMBERS))) == owner(repo, sorted(MEMBERS))


def test_the_score_is_fixed_across_machines_and_releases() -> None:
    # A fixed value: changing the hash would move every repo when replicas of two releases meet.
    assert score("reconciler-0", "models") == 0x18F9A32D2D45F167


def test_300_repos_over_3_replicas_are_spread_evenly() -> None:
    counts = Counter(assign(REPOS, MEMBERS).values())
    assert set(counts) == set(MEMBERS)
    assert max(counts.values()) / min(counts.values()) < 1.35, counts


def test_a_lost_replica_moves_only_its_own_repos() -> None:
    before = assign(REPOS, MEMBERS)
    after = assign(REPOS, MEMBERS[:2])
    moved = {r for r in REPOS if before[r] != after[r]}
    assert moved == {r for r in REPOS if before[r] == MEMBERS[2]}
    # ... and they spread over both survivors, not onto one.
    assert len({after[r] for r in moved}) == 2


def test_a_new_replica_takes_only_repos_from_others_and_about_its_share() -> None:
    before = assign(REPOS, MEMBERS)
    after = assign(REPOS, [*MEMBERS, "reconciler-7d9f-d"])
    moved = {r for r in REPOS if before[r] != after[r]}
    assert all(after[r] == "reconciler-7d9f-d" for r in moved)
    assert 50 <= len(moved) <= 100  # about a quarter of 300


def test_no_members_own_nothing() -> None:
    assert owner("r", []) is None
    assert assign(["r"], []) == {}


@given(
    st.lists(st.text("abcdefgh-", min_size=1, max_size=6), min_size=1, max_size=6, unique=True),
    st.text(min_size=1, max_size=20),
)
def test_removing_a_member_that_does_not_own_a_repo_never_moves_it(members: list[str], repo: str) -> None:
    first = owner(repo, members)
    for gone in members:
        if gone != first:
            assert owner(repo, [m for m in members if m != gone]) == first
