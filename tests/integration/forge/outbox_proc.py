"""An outbox worker in its own process, to be killed with SIGKILL in the middle of a post.

`python -m tests.integration.forge.outbox_proc <db url> <provider> <api url> <token> <project>
<repo> <now iso> <mode> <marker file>`. Mode `post-then-block`: the POST completes, then the
process writes the marker and blocks before it can mark the row posted. Mode `hang`: the forge
is set to hang, the process writes the marker and blocks inside the POST.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
from pathlib import Path

from reconciler.forge import OutboxWorker
from reconciler.forge.statuses import CommitStatus, GiteaClient, GitHubClient, GitLabClient, StatusProvider
from reconciler.tracking import Store


class BlockAfterPost:
    def __init__(self, inner: StatusProvider, marker: Path) -> None:
        self.inner = inner
        self.marker = marker
        self.provider = inner.provider
        self.forge = inner.forge
        self.description_limit = inner.description_limit

    @property
    def rate_key(self) -> str:
        return self.inner.rate_key

    def post_status(self, status: CommitStatus) -> None:
        self.inner.post_status(status)
        self.marker.write_text("posted")
        threading.Event().wait()  # until SIGKILL

    def list_statuses(self, sha: str) -> list[CommitStatus]:
        return self.inner.list_statuses(sha)


class MarkBeforePost(BlockAfterPost):
    def post_status(self, status: CommitStatus) -> None:
        self.marker.write_text("posting")
        self.inner.post_status(status)


def main(argv: list[str]) -> None:
    url, provider, api_url, token, project, repo, now_iso, mode, marker = argv
    classes = {"github": GitHubClient, "gitlab": GitLabClient, "gitea": GiteaClient}
    client = classes[provider](project, token, api_url, timeout=120)
    wrap = BlockAfterPost if mode == "post-then-block" else MarkBeforePost
    wrapper = wrap(client, Path(marker))
    store = Store.open(url)
    worker = OutboxWorker(store, {repo: wrapper}, lease=dt.timedelta(seconds=60))
    worker.run_once(dt.datetime.fromisoformat(now_iso))


if __name__ == "__main__":
    main(sys.argv[1:])
