"""Gitea (and Forgejo, which keeps its API): commit statuses and issue comments.

Gitea's API mirrors GitHub's paths under `/api/v1`, with `token` auth and a `status` field
where GitHub says `state`.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from reconciler.forge.events import PullRequestEvent
from reconciler.forge.statuses.base import Comment, CommitStatus, listed
from reconciler.forge.statuses.github import label_names, owner_repo
from reconciler.forge.statuses.http import RepoStatusesClient
from reconciler.statuses import CommitState

# Gitea stores descriptions as text; keep them to what its UI shows on one line.
DESCRIPTION_LIMIT = 255
_STATES = {"pending": CommitState.PENDING, "success": CommitState.SUCCESS, "failure": CommitState.FAILURE}


class GiteaClient(RepoStatusesClient):
    provider = "gitea"
    description_limit = DESCRIPTION_LIMIT

    def __init__(
        self,
        project: str,
        token: str,
        api_url: str,
        *,
        timeout: httpx.Timeout | float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.project = project
        self.repo_path = "/repos/" + owner_repo(project)
        super().__init__(api_url, {"Authorization": f"token {token}"}, token, timeout=timeout, transport=transport)

    def list_statuses(self, sha: str) -> list[CommitStatus]:
        items = self.http.pages(f"{self.repo_path}/statuses/{quote(sha, safe='')}", {"limit": 50})
        return [
            CommitStatus(
                sha=sha,
                context=str(item.get("context") or ""),
                # Gitea also has "warning"; we never post it, so it reads as an error.
                state=_STATES.get(str(item.get("status")), CommitState.ERROR),
                description=item.get("description"),
                target_url=item.get("target_url"),
            )
            for item in items
        ]

    def list_comments(self, number: int) -> list[Comment]:
        items = self.http.json("GET", f"{self.repo_path}/issues/{number}/comments") or []
        return [Comment(int(i["id"]), str(i.get("body") or "")) for i in items]

    def create_comment(self, number: int, body: str) -> Comment:
        made = self.http.json("POST", f"{self.repo_path}/issues/{number}/comments", json={"body": body})
        return Comment(int(made["id"]), str(made.get("body") or ""))

    def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        made = self.http.json("PATCH", f"{self.repo_path}/issues/comments/{comment_id}", json={"body": body})
        return Comment(int(made["id"]), str(made.get("body") or ""))

    def pull_request_labels(self, number: int) -> frozenset[str]:
        pull = self.http.json("GET", f"{self.repo_path}/pulls/{number}") or {}
        return label_names(pull.get("labels"))

    def open_pull_requests(self) -> list[PullRequestEvent]:
        items = self.http.pages(f"{self.repo_path}/pulls", {"state": "open", "limit": 50})
        return listed(self.provider, items, self.project)
