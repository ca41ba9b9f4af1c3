"""Prometheus metrics with controller-style names, in a registry of their own.

A private registry (not the process-global one) lets tests build a daemon, read its metrics, and
throw both away without leaking series into the next test.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconcile_total = Counter(
            "reconciler_reconcile_total",
            "Reconciles by repo and result (success, error, invalid).",
            ["repo", "result"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "reconciler_reconcile_duration_seconds",
            "Time of one fetch-compile-plan-apply-record cycle.",
            ["repo"],
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.queue_depth = Gauge(
            "reconciler_workqueue_depth",
            "Work items ready and waiting for a worker, by kind (reconcile, pull_request, ticks, ...).",
            ["kind"],
            registry=r,
        )
        self.queue_retries = Counter(
            "reconciler_workqueue_retries_total", "Requeues after a failure.", ["repo"], registry=r
        )
        self.git_fetch_duration = Histogram(
            "reconciler_git_fetch_duration_seconds",
            "Time of one git fetch.",
            ["repo"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.git_fetch_errors = Counter(
            "reconciler_git_fetch_errors_total", "Failed git fetches.", ["repo", "kind"], registry=r
        )
        self.runs = Gauge("reconciler_runs", "Runs by kind and current status.", ["kind", "status"], registry=r)
        self.last_applied_commit = Gauge(
            "reconciler_last_applied_commit_timestamp_seconds",
            "Commit time of the last commit applied, per repo.",
            ["repo"],
            registry=r,
        )
        self.runs_transitions = Counter(
            "reconciler_run_transitions_total",
            "Run status transitions recorded, by new status.",
            ["status"],
            registry=r,
        )
        self.actions_total = Counter(
            "reconciler_actions_total",
            "Planned actions applied, by action and result.",
            ["action", "result"],
            registry=r,
        )
        self.drift_corrected = Counter(
            "reconciler_drift_corrected_total",
            "Long-running runs whose objects were edited or deleted in the cluster and re-applied, by run kind.",
            ["kind"],
            registry=r,
        )

        self.work_errors = Counter(
            "reconciler_work_errors_total",
            "Work items (reconcile, pull_request, ticks, resume, gauges, retention) that failed and were requeued.",
            ["kind"],
            registry=r,
        )
        # The outbox, per forge (its API URL): what waits, since when, and why posts fail.
        self.outbox_pending = Gauge(
            "reconciler_outbox_pending",
            "Commit statuses queued and not posted yet (nor replaced by a newer state), per forge.",
            ["forge"],
            registry=r,
        )
        self.outbox_oldest_pending = Gauge(
            "reconciler_outbox_oldest_pending_seconds",
            "Age of the oldest commit status still waiting for its forge (0 when none waits).",
            ["forge"],
            registry=r,
        )
        self.forge_posts = Counter(
            "reconciler_forge_posts_total",
            "Commit statuses that reached the forge (posted, or found there already).",
            ["forge"],
            registry=r,
        )
        self.forge_post_errors = Counter(
            "reconciler_forge_post_errors_total",
            "Failed forge calls of the outbox, by kind: unreachable (nothing sent: connection "
            "refused or not made), transient (5xx, timeout after sending), rate_limited, permanent "
            "(401, 403, 404, 422).",
            ["forge", "kind"],
            registry=r,
        )
        # Sharding (reconciler.sharding): which repos this replica owns, how many replicas share them.
        self.repo_owned = Gauge(
            "reconciler_repo_owned", "1 on the replica that owns the repo, 0 on the others.", ["repo"], registry=r
        )
        self.shard_members = Gauge(
            "reconciler_shard_members", "Live replicas sharing the repos, as this one sees them.", registry=r
        )
        self.lease_renew_errors = Counter(
            "reconciler_lease_renew_errors_total",
            "Failed renewals of this replica's membership (or reads of the members).",
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
