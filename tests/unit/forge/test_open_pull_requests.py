"""Open pull requests as a forge's API lists them (`events.open_pull_requests`): an item missing
what a check needs is left out with the reason, never guessed; a head we cannot place in the
base repository (another repository, a deleted fork, no repository at all) reads as a fork."""

from __future__ import annotations

import copy
from typing import Any

from reconciler.forge.events import open_pull_requests

SHA = "a" * 40


def hub(number: int = 1, head_repo: Any = "same") -> dict[str, Any]:
    base = {"id": 10, "full_name": "acme/models"}
    pull: dict[str, Any] = {
        "number": number,
        "title": "t",
        "head": {"sha": SHA, "ref": "feature", "repo": copy.deepcopy(base) if head_repo == "same" else head_repo},
        "base": {"sha": "b" * 40, "ref": "main", "repo": base},
    }
    return pull


def test_an_item_missing_its_head_is_left_out_with_the_reason() -> None:
    broken = hub(2)
    del broken["head"]["sha"]
    found, problems = open_pull_requests("github", [hub(1), broken, {"number": "3"}, "not an object"], "acme/models")
    assert [e.number for e in found] == [1]
    assert problems == ["missing head.sha", "number must be an integer", "missing number"]


def test_a_head_that_cannot_be_placed_in_the_base_repository_is_a_fork() -> None:
    other = {"id": 11, "full_name": "mallory/models"}
    found, _ = open_pull_requests(
        "github", [hub(1), hub(2, other), hub(3, None), hub(4, {"full_name": "ACME/models"})], "acme/models"
    )
    assert {e.number: e.fork for e in found} == {1: False, 2: True, 3: True, 4: False}


def test_gitlab_merge_requests_read_their_own_fields() -> None:
    item = {
        "iid": 7, "sha": SHA, "source_branch": "feature", "target_branch": "main", "title": "t",
        "diff_refs": None, "source_project_id": 4200, "target_project_id": 4200,
    }  # fmt: skip
    forked = {**item, "iid": 8, "source_project_id": 9999}
    found, problems = open_pull_requests("gitlab", [item, forked], "ml-group/models")
    assert problems == []
    assert [(e.number, e.head_sha, e.base_ref, e.base_sha, e.fork) for e in found] == [
        (7, SHA, "main", None, False),
        (8, SHA, "main", None, True),
    ]
    assert all(e.action == "synchronize" and e.projects == ("ml-group/models",) for e in found)
