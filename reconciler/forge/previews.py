"""Preview runs: operations of an open pull request run under a PR-specific name prefix.

An operation opts in only through the base branch's repo config (`previews:` globs over op
names); whether a pull request may run them at all is `reconciler.forge.trust`'s decision. Its
preview runs are tracked like any run (so the dashboard, the status
observer and the outbox treat them alike), with cause kind `preview`, cause id
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
from typing import Any

from reconciler.backends.base import Backend
from reconciler.forge.commit_status import NO_LINKS, Links, enqueue_run_status
from reconciler.forge.queries import ensure_operation, op_key_of, preview_cause, preview_runs
from reconciler.model import Cause, OpKey, RunRequest, dns_label
from reconciler.statuses import Status, is_done
from reconciler.tracking import CauseKind, Run, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviewOp:
    """An operation of the pull request's head that runs as a preview."""

    op: OpKey
    kind: str
    spec_hash: str
    effective: dict[str, Any] = field(default_factory=dict)
    mode: str = "one-shot"


def preview_prefix(number: int) -> str:
    return f"pr-{number}-"


def preview_run_name(number: int, op: OpKey, spec_hash: str, head_sha: str) -> str:
    """Deterministic and at most 63 characters (a Kubernetes label value)."""
    cause = hashlib.sha256(preview_cause(number, head_sha).encode()).hexdigest()[:8]
    return f"{preview_prefix(number)}{dns_label(op.name, 32)}-{spec_hash[:8]}-{cause}"


class PreviewManager:
    def __init__(self, store: Store, backend: Backend, *, links: Links = NO_LINKS, namespace: str = "default") -> None:
        self.store = store
        self.backend = backend
        self.links = links
        self.namespace = namespace

    def start(self, repo: str, number: int, head_sha: str, ops: Sequence[PreviewOp], now: dt.datetime) -> list[str]:
        """Run `ops` as previews of `head_sha`; previews of earlier heads are retired first."""
        self.retire_stale(repo, number, head_sha, now)
        names = []
        for preview in ops:
            name = preview_run_name(number, preview.op, preview.spec_hash, head_sha)
            with self.store.unit_of_work() as tx:
                ensure_operation(self.store, tx, op_key=str(preview.op), repo=repo, mode=preview.mode, now=now)
                created = self.store.create_run(
                    op_key=str(preview.op),
                    cause_kind=CauseKind.PREVIEW,
                    cause_id=preview_cause(number, head_sha),
                    name=name,
                    spec_hash=preview.spec_hash,
                    backend=self.backend.name,
                    commit_sha=head_sha,
                    now=now,
                    session=tx,
                )
                if created.created:
                    enqueue_run_status(
                        self.store,
                        repo=repo,
                        run=created.run,
                        op_name=preview.op.name,
                        status=Status.CREATED,
                        now=now,
                        links=self.links,
                        session=tx,
                    )
            if is_done(created.run.status):
                names.append(name)
                continue
            # Outside the transaction: a backend call must not hold DB locks. Submit adopts an
            # existing run of the same name, so repeating it after a crash is harmless.
            ref = self.backend.submit(
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
                )
            )
            if created.run.backend_ref != ref:
                self.store.set_backend_ref(name, ref, now)
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
        for run in preview_runs(self.store, repo, number):
            if keep_head is not None and run.commit_sha == keep_head:
                continue
            self._retire_one(repo, run, now, reason, message)
            retired.append(run.name)
        return retired

    def _retire_one(self, repo: str, run: Run, now: dt.datetime, reason: str, message: str | None) -> None:
        if not is_done(run.status):
            self.backend.stop(run.name)
        self.backend.delete(run.name)
        if is_done(run.status):
            return
        with self.store.unit_of_work() as tx:
            change = self.store.transition(run.name, Status.STOPPED, at=now, reason=reason, message=message, session=tx)
            if change is not None:
                op = OpKey.parse(op_key_of(self.store, run, session=tx))
                enqueue_run_status(
                    self.store,
                    repo=repo,
                    run=run,
                    op_name=op.name,
                    status=Status.STOPPED,
                    now=now,
                    reason=reason,
                    message=message,
                    links=self.links,
                    session=tx,
                )
        log.info("preview retired", extra={"repo": repo, "run": run.name, "reason": reason})
