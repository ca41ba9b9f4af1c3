"""Never move backwards, against real histories: fast-forwards, rollbacks, rewrites, shallow copies."""

from __future__ import annotations

import logging

from reconciler.source import Relation, Verdict

ALLOW = ".polyaxon-reconciler.yaml"


def test_fast_forward_is_accepted(remote, make_source) -> None:
    first = remote.commit({"a.yaml": "1"})
    source = make_source(remote.url)
    assert source.advance(None, source.fetch()).verdict is Verdict.ACCEPT
    second = remote.commit({"a.yaml": "2"})
    third = remote.commit({"a.yaml": "3"})

    rev = source.fetch()
    result = source.advance(first, rev)

    assert rev.sha == third
    assert (result.verdict, result.relation, result.moves, result.current) == (
        Verdict.ACCEPT,
        Relation.AHEAD,
        True,
        third,
    )
    assert second != third
    same = source.advance(third, rev)
    assert (same.verdict, same.moves) == (Verdict.UNCHANGED, False)


def test_rewritten_history_is_ignored_by_default_and_logged(remote, make_source, caplog) -> None:
    base = remote.commit({"a.yaml": "1"})
    applied = remote.commit({"a.yaml": "2"})
    source = make_source(remote.url)
    source.fetch()
    remote.git("reset", "-q", "--hard", base)
    rewritten = remote.commit({"a.yaml": "other"})

    rev = source.fetch()
    with caplog.at_level(logging.WARNING, logger="reconciler.source"):
        result = source.advance(applied, rev)

    assert rev.sha == rewritten
    assert (result.verdict, result.relation, result.moves, result.current) == (
        Verdict.IGNORE,
        Relation.DIVERGED,
        False,
        applied,
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ignore" in m and rewritten[:12] in m and "force_push" in m for m in warnings), warnings


def test_rollback_to_an_ancestor_is_ignored(remote, make_source) -> None:
    older = remote.commit({"a.yaml": "1"})
    applied = remote.commit({"a.yaml": "2"})
    source = make_source(remote.url)
    source.fetch()
    remote.git("reset", "-q", "--hard", older)

    result = source.advance(applied, source.fetch())

    assert (result.verdict, result.relation) == (Verdict.IGNORE, Relation.BEHIND)


def test_force_push_accepted_when_the_applied_commit_allows_it(remote, make_source, caplog) -> None:
    base = remote.commit({ALLOW: "force_push: allow\n"})
    applied = remote.commit({"a.yaml": "2"})
    source = make_source(remote.url)
    source.fetch()
    remote.git("reset", "-q", "--hard", base)
    rewritten = remote.commit({"a.yaml": "other"})

    with caplog.at_level(logging.WARNING, logger="reconciler.source"):
        result = source.advance(applied, source.fetch())

    assert (result.verdict, result.moves, result.current) == (Verdict.ACCEPT_FORCED, True, rewritten)
    assert any("accept-forced" in r.getMessage() for r in caplog.records)


def test_rewritten_history_cannot_allow_itself(remote, make_source) -> None:
    base = remote.commit({"a.yaml": "1"})
    applied = remote.commit({"a.yaml": "2"})
    source = make_source(remote.url)
    source.fetch()
    remote.git("reset", "-q", "--hard", base)
    remote.commit({ALLOW: "force_push: allow\n"})

    result = source.advance(applied, source.fetch())

    assert result.verdict is Verdict.IGNORE


def test_explicit_policy_overrides_the_repo_config(remote, make_source) -> None:
    base = remote.commit({"a.yaml": "1"})
    applied = remote.commit({"a.yaml": "2"})
    source = make_source(remote.url)
    source.fetch()
    remote.git("reset", "-q", "--hard", base)

    result = source.advance(applied, source.fetch(), policy="allow")

    assert result.verdict is Verdict.ACCEPT_FORCED


def test_applied_commit_unknown_to_the_copy_is_not_trusted(remote, make_source) -> None:
    remote.commit({"a.yaml": "1"})
    source = make_source(remote.url)
    stranger = "1234567890abcdef1234567890abcdef12345678"
    result = source.advance(stranger, source.fetch())
    assert (result.verdict, result.relation) == (Verdict.IGNORE, Relation.UNKNOWN)


def test_shallow_copy_stays_shallow_on_fast_forward(remote, make_source) -> None:
    for n in range(4):
        remote.commit({"a.yaml": str(n)})
    source = make_source(remote.url, depth=1)
    applied = source.fetch().sha
    assert (source.path / "shallow").exists()
    assert int(source._local("rev-list", "--count", applied)) == 1
    new = remote.commit({"a.yaml": "next"})

    result = source.advance(applied, source.fetch())

    assert (result.verdict, result.current) == (Verdict.ACCEPT, new)
    assert (source.path / "shallow").exists()  # history was not deepened to decide


def test_shallow_copy_is_deepened_when_the_applied_commit_is_older(remote, make_source) -> None:
    applied = remote.commit({"a.yaml": "0"})
    for n in range(3):
        remote.commit({"a.yaml": str(n + 1)})
    source = make_source(remote.url, depth=1)
    rev = source.fetch()
    assert not source._has_commit(applied)

    result = source.advance(applied, rev)

    assert (result.verdict, result.relation) == (Verdict.ACCEPT, Relation.AHEAD)
    assert not (source.path / "shallow").exists()
