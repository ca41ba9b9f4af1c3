"""The interface every forge provider implements, and the plain values that cross it.

A provider is a thin translation of four operations (post a commit status, read a commit's
statuses back, keep one comment on a pull request, read a pull request's labels) into one
forge's REST calls. It holds no state beyond its HTTP connection pool: retries, backoff and
rate-limit pauses belong to the outbox worker, so every provider gets them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reconciler.statuses import CommitState


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
    def pull_request_labels(self, number: int) -> frozenset[str]:
        """The labels pull request `number` has now, as the forge's API says (never a webhook's)."""
        ...


class ForgeClient(StatusProvider, PullRequestProvider, Protocol):
    def close(self) -> None: ...


def clip(text: str | None, limit: int) -> str | None:
    """`text` cut to `limit` characters, marking the cut, so the forge never rejects it as too long."""
    if text is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"
