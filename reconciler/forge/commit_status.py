"""Which commit statuses the reconciler reports, and how they enter the outbox.

Contexts: `polyaxon/validate` for a commit's (or a pull request head's) compile result, and
`polyaxon/<op>` for each run a commit caused, in the state design.md §6 maps its run status to.
A status is written to the outbox in the same transaction as the state change it reports, so
the two commit together or not at all; the outbox worker posts it later.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import quote

from reconciler.statuses import CommitState, Status, commit_state
from reconciler.tracking import Run, Store, Tx

VALIDATE_CONTEXT = "polyaxon/validate"
CONTEXT_PREFIX = "polyaxon/"
# Long enough for "path:line: message" in a status; each provider clips to its own limit.
DESCRIPTION_MAX = 255


def run_context(op_name: str) -> str:
    return CONTEXT_PREFIX + op_name


@dataclass(frozen=True)
class Links:
    """Target URLs of statuses: pages of the daemon's own server (None: statuses carry no link)."""

    base_url: str | None = None

    def run(self, run_name: str) -> str | None:
        return f"{self.base_url.rstrip('/')}/runs/{quote(run_name, safe='')}" if self.base_url else None

    def commit(self, repo: str, sha: str) -> str | None:
        if not self.base_url:
            return None
        return f"{self.base_url.rstrip('/')}/repos/{quote(repo, safe='')}/commits/{quote(sha, safe='')}"


NO_LINKS = Links()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def validate_description(valid: bool, first_error: str | None) -> str:
    if valid:
        return "All polyaxonfiles are valid"
    return _one_line(first_error or "Invalid polyaxonfiles")[:DESCRIPTION_MAX]


def run_description(status: Status, reason: str | None = None, message: str | None = None) -> str:
    """`<status>` plus why, for the states where the why matters (stopped, skipped, failures)."""
    text = f"Run {status}"
    state = commit_state(status)
    detail = reason or message
    if detail and state in (CommitState.ERROR, CommitState.FAILURE):
        text += f": {detail}"
    return _one_line(text)[:DESCRIPTION_MAX]


def enqueue_validate(
    store: Store,
    *,
    repo: str,
    sha: str,
    valid: bool,
    first_error: str | None,
    now: dt.datetime,
    links: Links = NO_LINKS,
    session: Tx | None = None,
) -> bool:
    return store.enqueue_commit_status(
        repo=repo,
        sha=sha,
        context=VALIDATE_CONTEXT,
        state=CommitState.SUCCESS if valid else CommitState.FAILURE,
        description=validate_description(valid, first_error),
        target_url=links.commit(repo, sha),
        now=now,
        session=session,
    )


def enqueue_run_status(
    store: Store,
    *,
    repo: str,
    run: Run,
    op_name: str,
    status: Status,
    now: dt.datetime,
    reason: str | None = None,
    message: str | None = None,
    links: Links = NO_LINKS,
    session: Tx | None = None,
) -> bool:
    """Queue the status reporting `run` in `status`; False when the run has no commit or it is queued."""
    if not run.commit_sha:
        return False
    return store.enqueue_commit_status(
        repo=repo,
        sha=run.commit_sha,
        context=run_context(op_name),
        state=commit_state(status),
        description=run_description(status, reason, message),
        target_url=links.run(run.name),
        now=now,
        session=session,
    )
