"""Git forges (GitHub, GitLab, Gitea): verified webhooks, commit statuses through a durable
outbox, and pull-request checks with a plan comment and previews.

The daemon wires these: `webhook_routes` into the HTTP server (with its `on_push` and
`on_pull_request`), an `OutboxWorker` (a thread per forge) over the tracking store with one provider client
per repo (`client_for`), and `PullRequestChecks` with its `check_pull_request` and a
`PreviewManager` over the daemon's applier. State changes queue commit statuses through
`commit_status` in the same transaction.
"""

from reconciler.forge.commit_status import (
    VALIDATE_CONTEXT,
    Links,
    enqueue_run_status,
    enqueue_validate,
    run_context,
)
from reconciler.forge.errors import ForgeError, PermanentForgeError, RateLimited, TransientForgeError
from reconciler.forge.events import PingEvent, PullRequestEvent, PushEvent
from reconciler.forge.outbox import OutboxWorker
from reconciler.forge.previews import PreviewManager, PreviewOp, PreviewRuns, preview_prefix
from reconciler.forge.pulls import CheckPullRequest, PrCheckResult, PrOutcome, PullRequestChecks
from reconciler.forge.secrets import SecretMissing, forge_token, webhook_secret
from reconciler.forge.statuses import CommitStatus, ForgeClient, StatusProvider, client_for
from reconciler.forge.trust import PreviewGate, PreviewPolicy, preview_gate
from reconciler.forge.webhooks import DeliveryLog, WebhookTarget, webhook_routes, webhook_targets

__all__ = [
    "VALIDATE_CONTEXT",
    "CheckPullRequest",
    "CommitStatus",
    "DeliveryLog",
    "ForgeClient",
    "ForgeError",
    "Links",
    "OutboxWorker",
    "PermanentForgeError",
    "PingEvent",
    "PrCheckResult",
    "PrOutcome",
    "PreviewGate",
    "PreviewManager",
    "PreviewOp",
    "PreviewPolicy",
    "PreviewRuns",
    "PullRequestChecks",
    "PullRequestEvent",
    "PushEvent",
    "RateLimited",
    "SecretMissing",
    "StatusProvider",
    "TransientForgeError",
    "WebhookTarget",
    "client_for",
    "enqueue_run_status",
    "enqueue_validate",
    "forge_token",
    "preview_gate",
    "preview_prefix",
    "run_context",
    "webhook_routes",
    "webhook_secret",
    "webhook_targets",
]
