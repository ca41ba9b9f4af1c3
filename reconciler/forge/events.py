"""Webhook payloads of the three forges, read into the few events the reconciler acts on.

Pure: a verified, JSON-decoded payload and its event header in, a `PushEvent`,
`PullRequestEvent`, `PingEvent` or `Ignored` out; `MalformedPayload` when an event we act on
lacks a field we need. The forges name the same things differently (GitLab's merge request
"update" is GitHub's pull request "synchronize"); these types use GitHub's words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

# "labeled": a label was added or removed; the check runs again (a required label may now be there).
PrAction = Literal["opened", "synchronize", "reopened", "closed", "labeled"]
ZERO_SHA = "0" * 40


class MalformedPayload(ValueError):
    pass


@dataclass(frozen=True)
class PushEvent:
    provider: str
    projects: tuple[str, ...]  # the names the forge gives the repository (path; GitLab also id)
    ref: str
    before: str | None
    after: str

    @property
    def deleted(self) -> bool:
        return self.after == ZERO_SHA

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None


@dataclass(frozen=True)
class PullRequestEvent:
    provider: str
    projects: tuple[str, ...]
    number: int
    action: PrAction
    head_sha: str
    head_ref: str
    base_ref: str
    base_sha: str | None = None
    merged: bool = False
    title: str = ""
    # The head lives in another repository than the base. Unknown counts as a fork: a pull
    # request we cannot place gets what a stranger's gets (reconciler.forge.trust).
    fork: bool = True

    @property
    def closing(self) -> bool:
        return self.action == "closed"

    def into(self, branch: str) -> bool:
        """Whether it asks to merge into `branch` (the only pull requests a repo's branch checks)."""
        return self.base_ref == branch


@dataclass(frozen=True)
class PingEvent:
    provider: str


@dataclass(frozen=True)
class Ignored:
    reason: str


Event = PushEvent | PullRequestEvent | PingEvent | Ignored


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            raise MalformedPayload(f"missing {'.'.join(path)}")
        data = data[key]
    return data


def _text(data: Any, *path: str) -> str:
    value = _get(data, *path)
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"{'.'.join(path)} must be a non-empty string")
    return value


def _optional_text(data: Any, *path: str) -> str | None:
    try:
        value = _get(data, *path)
    except MalformedPayload:
        return None
    return value if isinstance(value, str) and value else None


def _number(data: Any, *path: str) -> int:
    value = _get(data, *path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayload(f"{'.'.join(path)} must be an integer")
    return value


def _hub_projects(payload: Any) -> tuple[str, ...]:
    return (_text(payload, "repository", "full_name"),)


def _gitlab_projects(payload: Any) -> tuple[str, ...]:
    project = _get(payload, "project")
    names = [_text(project, "path_with_namespace")]
    if isinstance(project, Mapping) and isinstance(project.get("id"), int):
        names.append(str(project["id"]))
    return tuple(names)


def _hub_push(provider: str, payload: Any) -> PushEvent:
    return PushEvent(
        provider=provider,
        projects=_hub_projects(payload),
        ref=_text(payload, "ref"),
        before=_optional_text(payload, "before"),
        after=_text(payload, "after"),
    )


def _same(a: Any, b: Any) -> bool:
    """Two identifiers that are both present and equal (names compared without case)."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or a == "" or b == "":
        return False
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return bool(a == b)


def _field(data: Any, *path: str) -> Any:
    try:
        return _get(data, *path)
    except MalformedPayload:
        return None


def _hub_fork(provider: str, pull: Any) -> bool:
    """GitHub: the head repository differs from the base one (or is gone: a deleted fork).

    Gitea: `head.repo_id` differs from `base.repo_id`. Not `head.repo.fork`, which is also true
    for a same-repository pull request in a repository that is itself a fork.
    """
    if provider == "gitea":
        head_id, base_id = _field(pull, "head", "repo_id"), _field(pull, "base", "repo_id")
        if head_id is not None and base_id is not None:
            return not _same(head_id, base_id)
    head, base = _field(pull, "head", "repo"), _field(pull, "base", "repo")
    if _same(_field(head, "id"), _field(base, "id")):
        return False
    return not _same(_field(head, "full_name"), _field(base, "full_name"))


def _hub_pull(provider: str, payload: Any, actions: Mapping[str, PrAction]) -> Event:
    raw = _text(payload, "action")
    action = actions.get(raw)
    if action is None:
        return Ignored(f"pull request action {raw!r}")
    pull = _get(payload, "pull_request")
    return PullRequestEvent(
        provider=provider,
        projects=_hub_projects(payload),
        number=_number(payload, "number") if "number" in payload else _number(pull, "number"),
        action=action,
        head_sha=_text(pull, "head", "sha"),
        head_ref=_text(pull, "head", "ref"),
        base_ref=_text(pull, "base", "ref"),
        base_sha=_optional_text(pull, "base", "sha"),
        merged=bool(pull.get("merged")) if isinstance(pull, Mapping) else False,
        title=_optional_text(pull, "title") or "",
        fork=_hub_fork(provider, pull),
    )


def open_pull_request(provider: str, pull: Any, project: str) -> PullRequestEvent:
    """A pull request as the forge's API lists it (`GET .../pulls`; GitLab: `.../merge_requests`,
    whose objects differ from its webhooks'), as the event a push to it sends: its head gets
    checked. What it says comes from the API with our token, like the labels the gate reads."""
    if provider == "gitlab":
        return PullRequestEvent(
            provider="gitlab",
            projects=(project,),
            number=_number(pull, "iid"),
            action="synchronize",
            head_sha=_text(pull, "sha"),
            head_ref=_text(pull, "source_branch"),
            base_ref=_text(pull, "target_branch"),
            base_sha=_optional_text(pull, "diff_refs", "base_sha"),
            title=_optional_text(pull, "title") or "",
            fork=not _same(_field(pull, "source_project_id"), _field(pull, "target_project_id")),
        )
    return PullRequestEvent(
        provider=provider,
        projects=(project,),
        number=_number(pull, "number"),
        action="synchronize",
        head_sha=_text(pull, "head", "sha"),
        head_ref=_text(pull, "head", "ref"),
        base_ref=_text(pull, "base", "ref"),
        base_sha=_optional_text(pull, "base", "sha"),
        title=_optional_text(pull, "title") or "",
        fork=_hub_fork(provider, pull),
    )


def open_pull_requests(provider: str, items: Iterable[Any], project: str) -> tuple[list[PullRequestEvent], list[str]]:
    """`open_pull_request` of each listed item, and what is wrong with each one left out."""
    found: list[PullRequestEvent] = []
    problems: list[str] = []
    for item in items:
        try:
            found.append(open_pull_request(provider, item, project))
        except MalformedPayload as e:
            problems.append(str(e))
    return found, problems


_GITHUB_ACTIONS: dict[str, PrAction] = {
    "opened": "opened",
    "synchronize": "synchronize",
    "reopened": "reopened",
    "closed": "closed",
    "labeled": "labeled",
    "unlabeled": "labeled",
}
_GITEA_ACTIONS: dict[str, PrAction] = {
    "opened": "opened",
    "synchronized": "synchronize",
    "reopened": "reopened",
    "closed": "closed",
    "label_updated": "labeled",
    "label_cleared": "labeled",
}


def parse_github(event: str, payload: Any) -> Event:
    if event == "ping":
        return PingEvent("github")
    if event == "push":
        return _hub_push("github", payload)
    if event == "pull_request":
        return _hub_pull("github", payload, _GITHUB_ACTIONS)
    return Ignored(f"event {event!r}")


def parse_gitea(event: str, payload: Any) -> Event:
    if event == "ping":
        return PingEvent("gitea")
    if event == "push":
        return _hub_push("gitea", payload)
    if event == "pull_request":
        return _hub_pull("gitea", payload, _GITEA_ACTIONS)
    return Ignored(f"event {event!r}")


def parse_gitlab(event: str, payload: Any) -> Event:
    kind = payload.get("object_kind") if isinstance(payload, Mapping) else None
    if event == "Push Hook" or kind == "push":
        return PushEvent(
            provider="gitlab",
            projects=_gitlab_projects(payload),
            ref=_text(payload, "ref"),
            before=_optional_text(payload, "before"),
            after=_text(payload, "after"),
        )
    if event == "Merge Request Hook" or kind == "merge_request":
        attrs = _get(payload, "object_attributes")
        raw = _text(attrs, "action")
        actions: dict[str, PrAction] = {"open": "opened", "reopen": "reopened", "close": "closed", "merge": "closed"}
        action = actions.get(raw)
        # "update" is also sent for title or label edits; only a new head (oldrev) is a push.
        if raw == "update" and _optional_text(attrs, "oldrev"):
            action = "synchronize"
        elif raw == "update" and isinstance(_field(payload, "changes", "labels"), Mapping):
            action = "labeled"
        if action is None:
            return Ignored(f"merge request action {raw!r}")
        return PullRequestEvent(
            provider="gitlab",
            projects=_gitlab_projects(payload),
            number=_number(attrs, "iid"),
            action=action,
            head_sha=_text(attrs, "last_commit", "id"),
            head_ref=_text(attrs, "source_branch"),
            base_ref=_text(attrs, "target_branch"),
            base_sha=None,
            merged=raw == "merge" or attrs.get("state") == "merged",
            title=_optional_text(attrs, "title") or "",
            fork=not _same(_field(attrs, "source_project_id"), _field(attrs, "target_project_id")),
        )
    return Ignored(f"event {event!r}")


def parse_generic(event: str, payload: Any) -> Event:
    """Our own format: `{"repo": <repo name in the daemon config>, "sha": <optional>}`."""
    if event == "ping":
        return PingEvent("generic")
    if event == "push":
        repo = _text(payload, "repo")
        sha = _optional_text(payload, "sha")
        return PushEvent(provider="generic", projects=(repo,), ref="", before=None, after=sha or "")
    return Ignored(f"event {event!r}")
