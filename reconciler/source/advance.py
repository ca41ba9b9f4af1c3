"""Never move backwards: whether a freshly fetched head may replace the last applied commit.

Kept pure (relation + policy in, verdict out) so the safety rule is tested on its own; the git
adapter only works out how the two commits relate.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reconciler.repo_config import ForcePushPolicy


class Relation(StrEnum):
    """How the fetched head relates to the last applied commit."""

    FIRST = "first"  # nothing applied yet
    SAME = "same"
    AHEAD = "ahead"  # fast-forward: the last applied commit is an ancestor of the fetched head
    BEHIND = "behind"  # the fetched head is an ancestor of the last applied commit (rolled back)
    DIVERGED = "diverged"  # neither is an ancestor of the other (history rewritten)
    UNKNOWN = "unknown"  # the last applied commit is not in the local copy, even after deepening


class Verdict(StrEnum):
    UNCHANGED = "unchanged"
    ACCEPT = "accept"
    ACCEPT_FORCED = "accept-forced"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Advance:
    verdict: Verdict
    relation: Relation
    previous: str | None
    fetched: str
    reason: str

    @property
    def moves(self) -> bool:
        """Should the caller compile and apply `fetched`?"""
        return self.verdict in (Verdict.ACCEPT, Verdict.ACCEPT_FORCED)

    @property
    def current(self) -> str | None:
        """The commit that stays (or becomes) the applied one."""
        return self.fetched if self.verdict is not Verdict.IGNORE else self.previous


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "nothing"


def decide(previous: str | None, fetched: str, relation: Relation, policy: ForcePushPolicy) -> Advance:
    def verdict(v: Verdict, reason: str) -> Advance:
        return Advance(v, relation, previous, fetched, reason)

    if relation is Relation.FIRST:
        return verdict(Verdict.ACCEPT, f"first commit for this repo: {_short(fetched)}")
    if relation is Relation.SAME:
        return verdict(Verdict.UNCHANGED, f"already at {_short(fetched)}")
    if relation is Relation.AHEAD:
        return verdict(Verdict.ACCEPT, f"fast-forward {_short(previous)}..{_short(fetched)}")
    new, old = _short(fetched), _short(previous)
    what = {
        Relation.BEHIND: f"fetched {new} is an ancestor of applied {old} (rolled back)",
        Relation.DIVERGED: f"fetched {new} does not descend from applied {old} (history rewritten)",
        Relation.UNKNOWN: f"applied {old} is not in the fetched history, so {new} may not descend from it",
    }[relation]
    if policy == "allow":
        return verdict(Verdict.ACCEPT_FORCED, f"{what}; accepted because force_push is 'allow'")
    return verdict(
        Verdict.IGNORE,
        f"{what}; ignored, staying at {_short(previous)} (set force_push: allow in the repo config "
        "to accept rewritten history)",
    )
