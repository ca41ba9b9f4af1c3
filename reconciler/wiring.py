"""Build a daemon from its settings: every adapter, made once and handed to those that use it.

This is the one module (with `daemon`) that knows every adapter. The applier and the orchestrator
need each other (the orchestrator records its runs through the applier; the applier expands DAGs
and matrices through the orchestrator), so the applier is made first and given the orchestrator.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.apply import Applier
from reconciler.backends import Backend
from reconciler.config import Settings
from reconciler.daemon import Daemon, utcnow
from reconciler.forge_wiring import build_forge_wiring
from reconciler.metrics import Metrics
from reconciler.orchestration import Orchestrator, Timer
from reconciler.orchestration.ticking import TICK_LEAD
from reconciler.runtokens import ENV_TOKEN, ENV_URL, RunTokens
from reconciler.shard_wiring import build_shard_wiring
from reconciler.source import Backoff, GitSource
from reconciler.tracking import Store
from reconciler.workqueue import WorkQueue


def git_sources(settings: Settings) -> dict[str, GitSource]:
    git_dir = Path(settings.data_dir) / "git"
    return {
        repo.name: GitSource(
            repo.name,
            repo.url,
            repo.branch,
            git_dir,
            token_file=repo.token_file,
            token_env=repo.token_env,
            # One try per reconcile: retrying is the work queue's job (capped, per repo, and
            # without holding a worker). Retries inside fetch would keep a worker asleep for
            # seconds per unreachable repo, and two such repos would stall every other one.
            backoff=Backoff(attempts=1),
        )
        for repo in settings.repos
    }


def build_daemon(
    settings: Settings,
    store: Store,
    backend: Backend,
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], datetime] = utcnow,
    timer: bool = True,
    kube_api: Any | None = None,
) -> Daemon:
    """A daemon over `store` and `backend`; `timer=False` leaves the APScheduler wake-ups out
    (one-pass `reconciler sync`, tests that drive ticks themselves). With `settings.sharding`,
    the daemon shares the repos with other replicas (`kube_api`: the API client its
    `kubernetes` mode keeps its Leases with)."""
    metrics = metrics or Metrics()
    queue = WorkQueue()
    # The daemon is made last; these callbacks reach it once it exists.
    holder: list[Daemon] = []
    applier = Applier(
        store,
        backend,
        metrics=metrics,
        clock=clock,
        project_of=lambda repo: holder[0].project_of(repo),
        # A backend whose submit waits on the network (Kubernetes) says how many it takes at once.
        submit_concurrency=int(getattr(backend, "submit_concurrency", 1)),
    )
    if hasattr(backend, "self_heal"):
        # The Kubernetes backend re-applies drift as it sees it: ask the run's repo config.
        backend.self_heal = lambda run: (
            holder[0].owns(run.op.repo)
            and (holder[0].repos[run.op.repo].repo_config.self_heal if run.op.repo in holder[0].repos else True)
        )
    orchestrator = Orchestrator(
        store,
        record=applier.record,
        record_many=applier.record_many,
        options_for=lambda op: holder[0].schedule_options(op),
        outputs_of=lambda run: holder[0].outputs_of(run),
        resolve_hub=lambda op, ref, params: holder[0].resolve_hub(op, ref, params),
        # Replicas keep their wake-ups in memory: a shared job store would wake any replica, not the owner.
        timer=Timer(store.job_store() if settings.sharding is None else None, lambda: holder[0].wake_ticks())
        if timer
        else None,
        # Ticks decided (and their runs recorded) ahead of time, created when due; without the
        # timer (one pass, or a test moving the clock itself) a tick is decided when it is due.
        lead=TICK_LEAD if timer else timedelta(0),
    )
    applier.orchestration = orchestrator
    forge = build_forge_wiring(
        settings,
        store,
        applier,
        on_push=lambda repo, sha: holder[0].on_push(repo, sha),
        on_pull_request=lambda repo, event: holder[0].pull_request_event(repo, event),
        check_pull_request=lambda repo, head, base: holder[0].check_pull_request(repo, head, base),
        clock=clock,
        metrics=metrics,
    )
    applier.reporter = forge
    applier.run_tokens = RunTokens(lambda: store.run_token_key(clock()))
    if hasattr(backend, "run_env"):
        # What a run needs to report while it runs (runtokens): its token, and where to send it
        # (`server.runs_url`, else this daemon's address for local runs once it listens).
        tokens, configured = applier.run_tokens, settings.server.runs_url
        local = backend.name == "local"

        def run_env(run_name: str) -> dict[str, str]:
            env = {ENV_TOKEN: tokens.token(run_name)}
            url = configured or (holder[0].address_for_runs() if local and holder else None)
            if url:
                env[ENV_URL] = url
            return env

        backend.run_env = run_env
    daemon = Daemon(
        settings,
        store,
        backend,
        applier=applier,
        orchestrator=orchestrator,
        forge=forge,
        sources=git_sources(settings),
        metrics=metrics,
        clock=clock,
        queue=queue,
    )
    if settings.sharding is not None:
        daemon.sharding = build_shard_wiring(
            settings, store, metrics, instance=store.instance_id(clock()), kube_api=kube_api, clock=clock
        )
        applier.fence = daemon.sharding.shard
    holder.append(daemon)
    return daemon


__all__ = ["build_daemon", "git_sources"]
