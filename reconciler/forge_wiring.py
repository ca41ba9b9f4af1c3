"""How the daemon meets the forges: statuses of its runs and commits, webhooks, PR checks.

The forge package knows forges and the outbox; the daemon knows repos, compile and plan. This
module is the seam: it turns the daemon's events (a run changed status, a commit was validated,
a pull request moved) into outbox rows and PR checks, and builds the forge clients from config.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from reconciler.config import Settings
from reconciler.errors import Located, first_line
from reconciler.forge import (
    ForgeClient,
    Links,
    OutboxWorker,
    PrCheckResult,
    PreviewManager,
    PreviewOp,
    PreviewRuns,
    PullRequestChecks,
    PullRequestEvent,
    SecretMissing,
    client_for,
    enqueue_run_status,
    enqueue_validate,
    forge_token,
    webhook_routes,
    webhook_targets,
)
from reconciler.forge.trust import PreviewPolicy
from reconciler.metrics import Metrics
from reconciler.model import OpKey
from reconciler.repo_config import RepoFileConfig
from reconciler.statuses import Status
from reconciler.tracking import Run, Store, Tx

log = logging.getLogger(__name__)

# /readyz names a forge whose oldest waiting status is older than this (it reports, never fails:
# see `ForgeWiring.backlog_problem`).
BACKLOG_WARN_AFTER = timedelta(minutes=5)


def pull_request_ref(provider: str, number: int) -> str:
    """Where each forge publishes a pull request's head in the base repository."""
    if provider == "gitlab":
        return f"refs/merge-requests/{number}/head"
    return f"refs/pull/{number}/head"


@dataclass
class ForgeWiring:
    store: Store
    clients: dict[str, ForgeClient]
    links: Links
    worker: OutboxWorker | None = None
    routes: list[Any] = field(default_factory=list)
    pulls: PullRequestChecks | None = None

    # --- StatusReporter (reconciler.apply) -----------------------------------------------------

    def run_status(
        self,
        run: Run,
        op: OpKey,
        status: Status,
        now: datetime,
        *,
        reason: str | None,
        message: str | None,
        session: Tx,
    ) -> bool:
        if op.repo not in self.clients:
            return False
        return enqueue_run_status(
            self.store,
            repo=op.repo,
            run=run,
            op_name=op.name,
            status=status,
            now=now,
            reason=reason,
            message=message,
            links=self.links,
            session=session,
        )

    def validated(self, repo: str, sha: str, errors: list[Located], now: datetime) -> None:
        if repo not in self.clients:
            return
        if enqueue_validate(
            self.store, repo=repo, sha=sha, valid=not errors, first_error=first_line(errors), now=now, links=self.links
        ):
            self.wake()

    def wake(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    # --- what waits for the forges -------------------------------------------------------------

    def gauge(self, now: datetime) -> None:
        """Refresh the outbox gauges (`reconciler_outbox_pending{forge}`, `..._oldest_pending_seconds`)."""
        if self.worker is not None:
            self.worker.gauge(now)

    def backlog_problem(self, now: datetime, limit: timedelta = BACKLOG_WARN_AFTER) -> str | None:
        """The forges whose oldest waiting status is older than `limit`, for `/readyz` to report.

        Report-only: a forge that is down or slow is not mended by taking the daemon out of its
        Service, which would only lose the webhooks the forge sends meanwhile; statuses wait in
        the outbox and drain when the forge answers.
        """
        if self.worker is None:
            return None
        late = []
        for b in self.worker.backlog(now):
            if b.pending and b.oldest > limit:
                why = f" (last error: {b.last_error[:200]})" if b.last_error else ""
                late.append(f"{b.forge}: {b.pending} statuses waiting, oldest {int(b.oldest.total_seconds())} s{why}")
        return "; ".join(late) or None

    def start(self) -> None:
        if self.worker is not None:
            self.worker.start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker.close()


def build_forge_wiring(
    settings: Settings,
    store: Store,
    runs: PreviewRuns,
    *,
    on_push: Callable[[str, str | None], None],
    on_pull_request: Callable[[str, PullRequestEvent], None],
    check_pull_request: Callable[[str, str, str | None], PrCheckResult],
    clock: Callable[[], datetime],
    metrics: Metrics | None = None,
) -> ForgeWiring:
    clients: dict[str, ForgeClient] = {}
    for repo in settings.repos:
        if repo.forge is None:
            continue
        try:
            token = forge_token(repo.forge)
        except SecretMissing as e:
            log.error("repo %s: no forge token (%s); commit statuses are not posted", repo.name, e)
            continue
        if token is None:
            log.warning("repo %s: forge configured without token_file or token_env; no statuses", repo.name)
            continue
        clients[repo.name] = client_for(repo.forge, token)
    links = Links(settings.server.public_url)
    wiring = ForgeWiring(store, clients, links)
    if clients:
        # One lane per forge inside: a forge down or slow never delays another's statuses.
        wiring.worker = OutboxWorker(store, clients, clock=clock, metrics=metrics)
        preview_namespace = settings.kubernetes.namespace
        wiring.pulls = PullRequestChecks(
            store,
            clients,
            check_pull_request,
            previews=PreviewManager(store, runs, namespace=preview_namespace),
            links=links,
            clock=clock,
            on_status_queued=wiring.wake,
        )
    targets = webhook_targets(settings.repos)
    if targets:
        wiring.routes = webhook_routes(
            targets, on_push=on_push, on_pull_request=on_pull_request, deliveries=store, clock=clock
        )
    return wiring


def preview_ops(desired: Any, base: RepoFileConfig) -> tuple[PreviewOp, ...]:
    """Operations of a pull request's compiled head that `base`, the repo config of the base
    branch at the pull request's base commit, opts in for previews. Nothing of the head (its
    repo config, a `preview` tag, a new op) opts anything in (reconciler.forge.trust)."""
    policy = PreviewPolicy.of(base)
    return tuple(
        PreviewOp(op=key, kind=op.kind, spec_hash=op.spec_hash, effective=op.effective)
        for key, op in sorted(desired.ops.items())
        if policy.names(key.name)
    )
