"""The never-move-backwards decision on its own: relation and policy in, verdict out."""

from __future__ import annotations

import pytest

from reconciler.source import Relation, Verdict, decide

OLD = "a" * 40
NEW = "b" * 40


@pytest.mark.parametrize(
    ("relation", "policy", "verdict", "moves", "current"),
    [
        (Relation.FIRST, "reject", Verdict.ACCEPT, True, NEW),
        (Relation.SAME, "reject", Verdict.UNCHANGED, False, NEW),
        (Relation.AHEAD, "reject", Verdict.ACCEPT, True, NEW),
        (Relation.AHEAD, "allow", Verdict.ACCEPT, True, NEW),
        (Relation.BEHIND, "reject", Verdict.IGNORE, False, OLD),
        (Relation.DIVERGED, "reject", Verdict.IGNORE, False, OLD),
        (Relation.UNKNOWN, "reject", Verdict.IGNORE, False, OLD),
        (Relation.BEHIND, "allow", Verdict.ACCEPT_FORCED, True, NEW),
        (Relation.DIVERGED, "allow", Verdict.ACCEPT_FORCED, True, NEW),
        (Relation.UNKNOWN, "allow", Verdict.ACCEPT_FORCED, True, NEW),
    ],
)
def test_verdicts(relation, policy, verdict, moves, current) -> None:
    previous = None if relation is Relation.FIRST else (NEW if relation is Relation.SAME else OLD)
    result = decide(previous, NEW, relation, policy)
    assert (result.verdict, result.moves, result.current) == (verdict, moves, current)
    assert result.relation is relation


def test_ignored_reason_names_both_commits_and_the_way_out() -> None:
    reason = decide(OLD, NEW, Relation.DIVERGED, "reject").reason
    assert OLD[:12] in reason and NEW[:12] in reason
    assert "force_push: allow" in reason


def test_forced_reason_says_why_it_was_accepted() -> None:
    assert "force_push is 'allow'" in decide(OLD, NEW, Relation.BEHIND, "allow").reason
