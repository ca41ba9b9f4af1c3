"""GitHub (and GitHub Enterprise: any `api_url`): commit statuses and issue comments.

`POST /repos/{owner}/{repo}/statuses/{sha}`; statuses read back from
`GET /repos/{owner}/{repo}/commits/{sha}/statuses`; a pull request's conversation comments are
issue comments.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from reconciler.forge.events import PullRequestEvent
from reconciler.forge.statuses.base import Comment, CommitStatus, listed
from reconciler.forge.statuses.http import RepoStatusesClient
from reconciler.statuses import CommitState

DEFAULT_API_URL = "https://api.github.com"


def owner_repo(project: str) -> str:
    owner, sep, name = project.strip("/").partition("/")
    if not sep or not owner or not name or "/" in name:
        raise ValueError(f"{project!r} is not an owner/name repository")
    return f"{quote(owner, safe='')}/{quote(name, safe='')}"


class GitHubClient(RepoStatusesClient):
    provider = "github"
    description_limit = 140

    def __init__(
        self,
        project: str,
        token: str,
        api_url: str | None = None,
        *,
        timeout: httpx.Timeout | float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.project = project
        self.repo_path = "/repos/" + owner_repo(project)
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        super().__init__(api_url or DEFAULT_API_URL, headers, token, timeout=timeout, transport=transport)

    def list_statuses(self, sha: str) -> list[CommitStatus]:
        items = self.http.pages(f"{self.repo_path}/commits/{quote(sha, safe='')}/statuses", {"per_page": 100})
        return [
            CommitStatus(
                sha=sha,
                context=str(item.get("context") or "default"),
                state=CommitState(item["state"]),
                description=item.get("description"),
                target_url=item.get("target_url"),
            )
            for item in items
        ]

    def list_comments(self, number: int) -> list[Comment]:
        items = self.http.pages(f"{self.repo_path}/issues/{number}/comments", {"per_page": 100})
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
        items = self.http.pages(f"{self.repo_path}/pulls", {"state": "open", "per_page": 100})
        return listed(self.provider, items, self.project)


def label_names(labels: object) -> frozenset[str]:
    """Names of a GitHub or Gitea `labels` list (objects with a `name`)."""
    if not isinstance(labels, list):
        return frozenset()
    return frozenset(str(item["name"]) for item in labels if isinstance(item, dict) and item.get("name"))
