"""GitLab (gitlab.com or self-managed): commit statuses and merge-request notes.

GitLab names states differently and keeps one status per (name, ref) that moves through them:
pending and running, then success, failed or canceled. It refuses to "move" a status to the
state it already has (400 "Cannot transition status"): for us that means the status is already
what we want, so it counts as posted. The project is a numeric id or a path, which goes
percent-encoded into the URL (`group%2Fproject`).
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from reconciler.forge.errors import PermanentForgeError
from reconciler.forge.events import PullRequestEvent
from reconciler.forge.statuses.base import Comment, CommitStatus, listed
from reconciler.forge.statuses.http import HttpForgeClient
from reconciler.statuses import CommitState

DEFAULT_API_URL = "https://gitlab.com/api/v4"
DESCRIPTION_LIMIT = 255
TO_GITLAB = {
    CommitState.PENDING: "pending",
    CommitState.SUCCESS: "success",
    CommitState.FAILURE: "failed",
    # Our "error" is a run stopped or skipped: GitLab's word for that is canceled.
    CommitState.ERROR: "canceled",
}
FROM_GITLAB = {
    "pending": CommitState.PENDING,
    "running": CommitState.PENDING,
    "created": CommitState.PENDING,
    "success": CommitState.SUCCESS,
    "failed": CommitState.FAILURE,
    "canceled": CommitState.ERROR,
    "skipped": CommitState.ERROR,
}


class GitLabClient(HttpForgeClient):
    provider = "gitlab"
    description_limit = DESCRIPTION_LIMIT

    def __init__(
        self,
        project: str,
        token: str,
        api_url: str | None = None,
        *,
        timeout: httpx.Timeout | float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not project.strip("/"):
            raise ValueError("a GitLab project is a numeric id or a group/name path")
        self.project = project
        self.project_path = "/projects/" + quote(project.strip("/"), safe="")
        super().__init__(
            api_url or DEFAULT_API_URL, {"PRIVATE-TOKEN": token}, token, timeout=timeout, transport=transport
        )

    def post_status(self, status: CommitStatus) -> None:
        body = self.status_body(status, state=TO_GITLAB[status.state], context_key="name")
        try:
            self.http.json("POST", f"{self.project_path}/statuses/{quote(status.sha, safe='')}", json=body)
        except PermanentForgeError as e:
            if e.status == 400 and "cannot transition status" in str(e).lower():
                return  # it already has this state: what we wanted
            raise

    def list_statuses(self, sha: str) -> list[CommitStatus]:
        items = self.http.pages(
            f"{self.project_path}/repository/commits/{quote(sha, safe='')}/statuses", {"per_page": 100}
        )
        found = [
            CommitStatus(
                sha=sha,
                context=str(item.get("name") or "default"),
                state=FROM_GITLAB.get(str(item.get("status")), CommitState.ERROR),
                description=item.get("description"),
                target_url=item.get("target_url"),
            )
            for item in items
        ]
        return found

    def list_comments(self, number: int) -> list[Comment]:
        items = self.http.pages(
            f"{self.project_path}/merge_requests/{number}/notes",
            {"per_page": 100, "sort": "asc", "order_by": "created_at"},
        )
        return [Comment(int(i["id"]), str(i.get("body") or "")) for i in items if not i.get("system")]

    def create_comment(self, number: int, body: str) -> Comment:
        made = self.http.json("POST", f"{self.project_path}/merge_requests/{number}/notes", json={"body": body})
        return Comment(int(made["id"]), str(made.get("body") or ""))

    def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        made = self.http.json(
            "PUT", f"{self.project_path}/merge_requests/{number}/notes/{comment_id}", json={"body": body}
        )
        return Comment(int(made["id"]), str(made.get("body") or ""))

    def pull_request_labels(self, number: int) -> frozenset[str]:
        merge_request = self.http.json("GET", f"{self.project_path}/merge_requests/{number}") or {}
        labels = merge_request.get("labels")
        if not isinstance(labels, list):
            return frozenset()
        # Names by default; objects with a `name` when asked `with_labels_details`.
        return frozenset(str(i["name"] if isinstance(i, dict) else i) for i in labels if i)

    def open_pull_requests(self) -> list[PullRequestEvent]:
        items = self.http.pages(f"{self.project_path}/merge_requests", {"state": "opened", "per_page": 100})
        return listed(self.provider, items, self.project)
