"""The interface every forge provider implements, and the plain values that cross it.

A provider is a thin translation of five operations (post a commit status, read a commit's
statuses back, keep one comment on a pull request, read a pull request's labels, list the open
pull requests) into one forge's REST calls. It holds no state beyond its HTTP connection pool: retries, backoff and
rate-limit pauses belong to the outbox worker, so every provider gets them the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.forge.events import PullRequestEvent, open_pull_requests
from reconciler.statuses import CommitState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitStatus:
    sha: str
    context: str
    state: CommitState
    description: str | None = None
    target_url: str | None = None


@dataclass(frozen=True)
class Comment:
    id: int
    body: str


class StatusProvider(Protocol):
    provider: str
    # Longest description the forge accepts; longer ones are cut with an ellipsis.
    description_limit: int

    # The forge as logs, metrics and /readyz name it: its API URL, without credentials.
    forge: str

    @property
    def rate_key(self) -> str:
        """Requests sharing a rate-limit budget share this key (the forge and the token)."""
        ...

    def post_status(self, status: CommitStatus) -> None:
        """Set `status.context` of `status.sha` to `status.state`. Raises `ForgeError`s."""
        ...

    def list_statuses(self, sha: str) -> list[CommitStatus]:
        """The statuses the forge has for `sha`, newest first, in our `CommitState` terms."""
        ...


class CommentProvider(Protocol):
    def list_comments(self, number: int) -> list[Comment]:
        """Comments (GitLab: notes) on pull request `number`, oldest first."""
        ...

    def create_comment(self, number: int, body: str) -> Comment: ...

    def update_comment(self, number: int, comment_id: int, body: str) -> Comment: ...


class PullRequestProvider(CommentProvider, Protocol):
    provider: str

    def pull_request_labels(self, number: int) -> frozenset[str]:
        """The labels pull request `number` has now, as the forge's API says (never a webhook's)."""
        ...

    def open_pull_requests(self) -> list[PullRequestEvent]:
        """The pull requests open now, as the forge's API lists them, each as the event a push
        to it sends (what a missed webhook would have said)."""
        ...


class ForgeClient(StatusProvider, PullRequestProvider, Protocol):
    def close(self) -> None: ...


def listed(provider: str, items: Iterable[Any], project: str) -> list[PullRequestEvent]:
    """The open pull requests among a forge's list; one it describes oddly is left out, logged."""
    found, problems = open_pull_requests(provider, items, project)
    for problem in problems:
        log.warning("an open pull request of %s is left out: %s", project, problem)
    return found


def clip(text: str | None, limit: int) -> str | None:
    """`text` cut to `limit` characters, marking the cut, so the forge never rejects it as too long."""
    if text is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"
