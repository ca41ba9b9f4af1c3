"""Preview runs: operations of an open pull request run under a PR-specific name prefix.

An operation opts in only through the base branch's repo config (`previews:` globs over op
names); whether a pull request may run them at all is `reconciler.forge.trust`'s decision. Its
preview runs are tracked like any run (so the dashboard, the status
observer and the outbox treat them alike), with cause `preview`, cause id
`pr-<n>@<head sha>` and the head sha as their commit, so their `polyaxon/<op>` statuses land on
the pull request's head. Names start with `pr-<n>-`, so they never collide with the tracked
branch's runs. A new head stops and removes the previous head's previews; closing or merging
the pull request stops and removes them all. Every step is idempotent (run creation is keyed by
cause, backend submit adopts by name, delete of what is gone is no error), so a crash anywhere
is repaired by handling the event again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.model import Cause, OpKey, RunRequest, StatusTransition, dns_label
from reconciler.statuses import Status, is_done
from reconciler.tracking import Run, Store, preview_cause

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviewOp:
    """An operation of the pull request's head that runs as a preview."""

    op: OpKey
    kind: str
    spec_hash: str
    effective: dict[str, Any] = field(default_factory=dict)
    mode: str = "one-shot"


class PreviewRuns(Protocol):
    """How previews start and end runs: the daemon's applier, the one path every run takes (so a
    DAG or matrix preview is expanded like any other, and statuses reach the outbox with it)."""

    def create(self, request: RunRequest, now: dt.datetime) -> str | None: ...

    def stop(self, run_name: str) -> None: ...

    def delete(self, run_name: str) -> None: ...

    def transition(self, transition: StatusTransition) -> bool: ...


def preview_prefix(number: int) -> str:
    return f"pr-{number}-"


def preview_run_name(number: int, op: OpKey, spec_hash: str, head_sha: str) -> str:
    """Deterministic and at most 63 characters (a Kubernetes label value)."""
    cause = hashlib.sha256(f"{op}\0{preview_cause(number, head_sha)}".encode()).hexdigest()[:8]
    return f"{preview_prefix(number)}{dns_label(op.name, 32)}-{spec_hash[:8]}-{cause}"


class PreviewManager:
    def __init__(self, store: Store, runs: PreviewRuns, *, namespace: str = "default") -> None:
        self.store = store
        self.runs = runs
        self.namespace = namespace

    def start(self, repo: str, number: int, head_sha: str, ops: Sequence[PreviewOp], now: dt.datetime) -> list[str]:
        """Run `ops` as previews of `head_sha`; previews of earlier heads are retired first."""
        self.retire_stale(repo, number, head_sha, now)
        names = []
        for preview in ops:
            name = preview_run_name(number, preview.op, preview.spec_hash, head_sha)
            # A preview comes from a pull request: its operation row must not take the PR's spec
            # as the tracked branch's last good one.
            self.store.ensure_operation(str(preview.op), repo, preview.mode, now)
            self.runs.create(
                RunRequest(
                    name=name,
                    op=preview.op,
                    kind=preview.kind,
                    spec_hash=preview.spec_hash,
                    effective=preview.effective,
                    cause=Cause.PREVIEW,
                    cause_id=preview_cause(number, head_sha),
                    commit=head_sha,
                    namespace=self.namespace,
                ),
                now,
            )
            names.append(name)
        return names

    def retire_stale(self, repo: str, number: int, head_sha: str, now: dt.datetime) -> list[str]:
        """Stop and remove the previews of heads other than `head_sha` (it did not compile)."""
        return self._retire(
            repo, number, now, keep_head=head_sha, reason="Superseded", message=f"new head {head_sha[:12]}"
        )

    def cleanup(self, repo: str, number: int, now: dt.datetime) -> list[str]:
        """Stop and remove every preview of pull request `number` (it closed or merged)."""
        return self._retire(repo, number, now, keep_head=None, reason="PullRequestClosed", message=None)

    def _retire(
        self, repo: str, number: int, now: dt.datetime, *, keep_head: str | None, reason: str, message: str | None
    ) -> list[str]:
        retired = []
        for run in self.store.preview_runs(repo, number):
            if keep_head is not None and run.commit_sha == keep_head:
                continue
            self._retire_one(repo, run, now, reason, message)
            retired.append(run.name)
        return retired

    def _retire_one(self, repo: str, run: Run, now: dt.datetime, reason: str, message: str | None) -> None:
        if not is_done(run.status):
            # Recorded before the backend is asked: the process's end, observed first, would
            # otherwise record the stop without its reason (the PR's status would say "stopped").
            self.runs.transition(StatusTransition(run.name, Status.STOPPED, now, reason, message or ""))
            self.runs.stop(run.name)
        self.runs.delete(run.name)
        log.info("preview retired", extra={"repo": repo, "run": run.name, "reason": reason})
