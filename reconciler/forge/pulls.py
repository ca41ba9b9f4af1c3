"""Pull-request checks: validate the head, show the plan in one comment, run opted-in previews.

For an opened, synchronized or reopened pull request: the daemon's `check_pull_request(repo,
head_sha, base_sha)` compiles the head and plans it against the base; the result becomes the
`polyaxon/validate` status of the head (through the outbox), one comment on the pull request
(found again by a hidden marker and edited in place on every push, never a second one), and
preview runs of the operations the base branch opted in, when `trust.preview_gate` lets this
pull request have them (not from a fork unless allowed; a required label read back from the
forge). Closing or merging removes the previews.

`handle()` is idempotent, so the daemon may call it again after any failure (a forge error
while writing the comment propagates for exactly that reason). Calls for the same pull request
are serialised here, so two quick pushes cannot both create "the" comment.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler.forge.commit_status import NO_LINKS, Links, enqueue_validate
from reconciler.forge.errors import PermanentForgeError
from reconciler.forge.events import PullRequestEvent
from reconciler.forge.previews import PreviewManager, PreviewOp
from reconciler.forge.statuses.base import PullRequestProvider
from reconciler.forge.trust import PreviewGate, PreviewPolicy, preview_gate
from reconciler.tracking import Store

log = logging.getLogger(__name__)

# GitHub's comment limit is 65536 characters; GitLab's and Gitea's are larger.
COMMENT_LIMIT = 60_000


@dataclass(frozen=True)
class PrCheckResult:
    valid: bool
    first_error: str | None  # "path:line: message" of the first error when not valid
    plan_text: str  # what merging would change, readable as is
    # Operations of the head the base branch opts in for previews, and what else the base
    # branch says about who may have them (forks, a label): never read from the head.
    previews: tuple[PreviewOp, ...] = field(default=())
    policy: PreviewPolicy = field(default=PreviewPolicy())


CheckPullRequest = Callable[[str, str, str | None], PrCheckResult]
"""(repo name, head sha, base sha or None for "the tracked branch as applied") -> result."""


@dataclass(frozen=True)
class PrOutcome:
    validated: bool = False
    comment_id: int | None = None
    previews: tuple[str, ...] = ()
    cleaned: tuple[str, ...] = ()


def closed(provider: str, number: int) -> PullRequestEvent:
    """The event of a pull request found closed without its webhook (only its number is known)."""
    return PullRequestEvent(
        provider=provider, projects=(), number=number, action="closed", head_sha="", head_ref="", base_ref=""
    )


def marker(repo: str) -> str:
    return f"<!-- polyaxon-reconciler:plan:{repo} -->"


def comment_body(
    repo: str,
    event: PullRequestEvent,
    result: PrCheckResult,
    previews: tuple[str, ...] = (),
    withheld: str | None = None,
) -> str:
    head = event.head_sha[:12]
    lines = [marker(repo), f"### Polyaxon reconciler: `{repo}` at `{head}` into `{event.base_ref}`", ""]
    if result.valid:
        lines.append("**Valid**: every polyaxonfile compiles.")
    else:
        lines.append(f"**Invalid**: `{result.first_error or 'see the validate status'}`")
    lines += ["", "#### Plan against the base branch", "", "```", result.plan_text.strip() or "(no changes)", "```"]
    if previews:
        lines += ["", "#### Previews", "", *[f"- `{name}`" for name in previews]]
    elif withheld:
        lines += ["", "#### Previews", "", f"None run: {withheld}."]
    body = "\n".join(lines) + "\n"
    if len(body) > COMMENT_LIMIT:
        body = body[: COMMENT_LIMIT - 40] + "\n```\n(plan cut: too long)\n"
    return body


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PullRequestChecks:
    def __init__(
        self,
        store: Store,
        clients: Mapping[str, PullRequestProvider],
        check: CheckPullRequest,
        *,
        previews: PreviewManager | None = None,
        links: Links = NO_LINKS,
        clock: Callable[[], dt.datetime] = _utcnow,
        on_status_queued: Callable[[], None] = lambda: None,
    ) -> None:
        """`clients` maps repo names to their forge; `on_status_queued` is the outbox's `wake`."""
        self.store = store
        self.clients = dict(clients)
        self.check = check
        self.previews = previews
        self.links = links
        self.clock = clock
        self.on_status_queued = on_status_queued
        self._comment_ids: dict[tuple[str, int], int] = {}
        # The head each open pull request was last checked at, since this process started.
        self._checked: dict[tuple[str, int], str] = {}
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, repo: str, number: int) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((repo, number), threading.Lock())

    def handle(self, repo: str, event: PullRequestEvent) -> PrOutcome:
        with self._lock(repo, event.number):
            now = self.clock()
            if event.closing:
                cleaned = self.previews.cleanup(repo, event.number, now) if self.previews else []
                self._comment_ids.pop((repo, event.number), None)
                with self._locks_guard:
                    self._checked.pop((repo, event.number), None)
                if cleaned:
                    self.on_status_queued()
                return PrOutcome(cleaned=tuple(cleaned))
            result = self.check(repo, event.head_sha, event.base_sha)
            enqueue_validate(
                self.store,
                repo=repo,
                sha=event.head_sha,
                valid=result.valid,
                first_error=result.first_error,
                now=now,
                links=self.links,
            )
            self.on_status_queued()
            started: tuple[str, ...] = ()
            gate = self.gate(repo, event, result)
            if self.previews is not None:
                # Only a head that compiles and passes the gate runs anything; older heads'
                # previews go either way.
                if result.valid and gate.allowed:
                    started = tuple(self.previews.start(repo, event.number, event.head_sha, result.previews, now))
                else:
                    self.previews.retire_stale(repo, event.number, event.head_sha, now)
                self.on_status_queued()
            withheld = None if gate.allowed or not result.previews else gate.reason
            if withheld:
                log.info(
                    "previews withheld", extra={"repo": repo, "pr": event.number, "fork": event.fork, "why": withheld}
                )
            body = comment_body(repo, event, result, started, withheld)
            comment_id = self.upsert_comment(repo, event.number, body)
            with self._locks_guard:
                self._checked[(repo, event.number)] = event.head_sha
            return PrOutcome(validated=True, comment_id=comment_id, previews=started)

    def sweep(self, repo: str) -> list[PullRequestEvent]:
        """What the forge's list of open pull requests says webhooks did not: each open one
        whose head this process has not checked yet (at start-up: every open one), and a
        closing event for each pull request with previews still running that is not open any
        more. The daemon handles them as it handles webhooks."""
        client = self.clients[repo]
        found = client.open_pull_requests()
        open_now = {event.number for event in found}
        with self._locks_guard:  # the workers checking pull requests write it meanwhile
            for key in [k for k in self._checked if k[0] == repo and k[1] not in open_now]:
                del self._checked[key]  # closed or merged (its webhook, if any, came first)
            due = [event for event in found if self._checked.get((repo, event.number)) != event.head_sha]
        if self.previews is not None:
            for number in sorted(self.store.previewed_pull_requests(repo) - open_now):
                due.append(closed(client.provider, number))
        return due

    def gate(self, repo: str, event: PullRequestEvent, result: PrCheckResult) -> PreviewGate:
        """May this pull request run the previews its base branch opts in (reconciler.forge.trust)?"""
        client = self.clients[repo]
        return preview_gate(
            result.policy,
            fork=event.fork,
            labels=lambda: client.pull_request_labels(event.number),
            wanted=bool(result.previews),
        )

    def upsert_comment(self, repo: str, number: int, body: str) -> int:
        """Edit our comment on the pull request, or write it if there is none yet."""
        client = self.clients[repo]
        key = (repo, number)
        known = self._comment_ids.get(key)
        if known is None:
            tag = marker(repo)
            known = next((c.id for c in client.list_comments(number) if tag in c.body), None)
        if known is not None:
            try:
                client.update_comment(number, known, body)
                self._comment_ids[key] = known
                return known
            except PermanentForgeError as e:
                if e.status != 404:
                    raise
                log.info("plan comment was deleted; writing a new one", extra={"repo": repo, "pr": number})
        made = client.create_comment(number, body)
        self._comment_ids[key] = made.id
        return made.id
