"""The daemon: a work queue of typed items, a handler for each, and workers that never die.

One reconcile = fetch -> load the commit -> plan -> apply -> record (`Daemon.reconcile_repo`).
Work items are values (`ReconcileRepo`, `CheckPullRequest`, `FireTicks`, `Resume`, `Gauges`,
`Retention`) queued in a rate-limited work queue (`reconciler.workqueue`): an item is never
handled by two workers at once, a webhook during a reconcile is not lost, and each item says when
it wants to run again. Every item goes through `_process`, the one place that catches, logs,
counts (`reconciler_work_errors_total{kind}`) and requeues with backoff, so no exception ends a
worker. Status transitions from the backend are recorded as they happen by an observer thread.

The daemon receives its collaborators (store, backend, applier, orchestrator, forge wiring, git
sources); `reconciler.wiring.build_daemon` builds them from the settings. With `sharding`, replicas
share the repos (`reconciler.shard_wiring`): each acts only on the repos it owns (`owns`) and hands
work that reached it for another replica's repo to that owner.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from reconciler.apply import Applier, ApplyResult
from reconciler.backends import Backend
from reconciler.config import RepoConfig, Settings
from reconciler.errors import Located, first_line
from reconciler.forge_wiring import ForgeWiring, preview_ops, pull_request_ref
from reconciler.loader import BadRepoConfig, LoadedCommit, load_commit
from reconciler.metrics import Metrics
from reconciler.model import (
    ANNOTATION_OP_KEY,
    ANNOTATION_REPO,
    ObservedObject,
    OpKey,
    RunReport,
    StatusTransition,
)
from reconciler.orchestration import Orchestrator, ScheduleOptions
from reconciler.orchestration.tree import ORCHESTRATED
from reconciler.plan import Action, PlanOptions, TrackedState, plan
from reconciler.repo_config import RepoFileConfig
from reconciler.scheduling.ticks import ConcurrencyPolicy
from reconciler.server import Access, Check, HttpServer, build_app
from reconciler.shard_wiring import PUSH, Delivery, ShardWiring
from reconciler.sharding import NotOwner
from reconciler.snapshot import planner_rows, tracked_state
from reconciler.source import Backoff, GitSource, SourceError
from reconciler.statuses import Status, is_done
from reconciler.tracking import OperationRow, PlannerRun, Point, Store
from reconciler.workqueue import ShutDown, WorkQueue

log = logging.getLogger("reconciler")


# Failed fetches in a row (each retried by the work queue after a short backoff) after which
# /readyz reports the repo: enough to ride out one dropped connection.
FAILED_FETCHES_UNREADY = 3
# The status observer records transitions that come together in one transaction, this many at
# most; one that comes alone is recorded after the backend has been quiet this long (seconds).
OBSERVED_BATCH = 100
OBSERVED_QUIET = 0.05


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- work items ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcileRepo:
    repo: str


@dataclass(frozen=True)
class CheckPullRequest:
    repo: str
    number: int


@dataclass(frozen=True)
class SweepPullRequests:
    """List a repo's open pull requests from its forge: what webhooks missed (`forge.pulls.sweep`)."""

    repo: str


@dataclass(frozen=True)
class FireTicks:
    """Due schedules: woken by the timer at each next tick; a slow poll is the fallback."""


@dataclass(frozen=True)
class Resume:
    """Re-drive what a crash interrupted: unsubmitted runs, unconsumed transitions, containers."""


@dataclass(frozen=True)
class Gauges:
    """Refresh the `reconciler_runs` gauge."""


@dataclass(frozen=True)
class Retention:
    """Forget finished runs past the retention settings, with their files."""


WorkItem = ReconcileRepo | CheckPullRequest | SweepPullRequests | FireTicks | Resume | Gauges | Retention

# The metric label of each kind of item.
KIND: Mapping[type, str] = {
    ReconcileRepo: "reconcile",
    CheckPullRequest: "pull_request",
    SweepPullRequests: "pull_request_sweep",
    FireTicks: "ticks",
    Resume: "resume",
    Gauges: "gauges",
    Retention: "retention",
}


# --- per-repo state ------------------------------------------------------------------------------


@dataclass
class RepoState:
    config: RepoConfig
    source: GitSource
    loaded: LoadedCommit | None = None  # the applied commit, as loaded
    last_fetch_ok: datetime | None = None
    head: str | None = None  # the branch's head at the last successful fetch
    last_error: str | None = None
    fetch_failures: int = 0  # in a row, since the last successful fetch
    lock: threading.Lock = field(default_factory=threading.Lock)  # one reconcile or PR check at a time

    @property
    def repo_config(self) -> RepoFileConfig:
        return self.loaded.config if self.loaded is not None else RepoFileConfig()


@dataclass
class ReconcileResult:
    repo: str
    commit: str | None = None
    skipped: str | None = None  # why nothing was applied (unchanged, ignored head, bad repo config)
    invalid: list[Located] = field(default_factory=list)
    applied: ApplyResult = field(default_factory=ApplyResult)
    actions: dict[str, int] = field(default_factory=dict)
    plan: list[Action] = field(default_factory=list)  # what was decided, noops included
    next_retry: datetime | None = None  # the earliest retry of a failed long-running run still to come

    @property
    def converged(self) -> bool:
        return not self.invalid and self.applied.ok


class Daemon:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        backend: Backend,
        *,
        applier: Applier,
        orchestrator: Orchestrator,
        forge: ForgeWiring,
        sources: Mapping[str, GitSource],
        metrics: Metrics,
        clock: Callable[[], datetime] = utcnow,
        queue: WorkQueue | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.backend = backend
        self.applier = applier
        self.orchestration = orchestrator
        self.forge = forge
        self.metrics = metrics
        self.clock = clock
        self.queue = queue or WorkQueue()
        self.repos: dict[str, RepoState] = {r.name: RepoState(r, sources[r.name]) for r in settings.repos}
        self.routes: list[Any] = []  # more HTTP routes added by whoever builds the daemon
        self._pull_requests: dict[CheckPullRequest, Any] = {}  # the latest event per pull request
        self._pull_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: HttpServer | None = None
        self.sharding: ShardWiring | None = None  # replicas sharing the repos (set by the wiring)
        self._handlers: dict[type, Callable[[Any], float | None]] = {
            ReconcileRepo: self._handle_reconcile,
            CheckPullRequest: self._handle_pull_request,
            SweepPullRequests: self._handle_sweep,
            FireTicks: self._handle_ticks,
            Resume: self._handle_resume,
            Gauges: self._handle_gauges,
            Retention: self._handle_retention,
        }

    # --- one reconcile --------------------------------------------------------------------------

    def reconcile_repo(self, name: str) -> ReconcileResult:
        state = self.repos[name]
        with state.lock:
            result = self._reconcile_repo(name, state)
        if result.commit is not None and not result.skipped:
            self.forge.validated(name, result.commit, result.invalid, self.clock())
        return result

    def _fetch(self, name: str, state: RepoState, now: datetime) -> Any:
        started = time.monotonic()
        try:
            revision = state.source.fetch()
        except SourceError as e:
            self.metrics.git_fetch_errors.labels(repo=name, kind=type(e).__name__).inc()
            state.last_error = str(e)
            state.fetch_failures += 1
            raise
        finally:
            self.metrics.git_fetch_duration.labels(repo=name).observe(time.monotonic() - started)
        state.last_fetch_ok, state.last_error, state.fetch_failures = now, None, 0
        state.head = getattr(revision, "sha", None)
        return revision

    def _reconcile_repo(self, name: str, state: RepoState) -> ReconcileResult:
        result = ReconcileResult(name)
        started = time.monotonic()
        now = self.clock()
        self.store.ensure_repo(name, state.config.url, state.config.branch, now)
        revision = self._fetch(name, state, now)
        last = self.store.last_commit(name)
        advance = state.source.advance(last.sha if last else None, revision)
        # An unchanged or refused head still reconciles the applied commit: drift and runs
        # recorded but not started are handled every interval, not only on new commits.
        sha = advance.current
        result.commit = sha
        if sha is None:
            result.skipped = advance.reason
            return result
        if not advance.moves and advance.relation.value != "same":
            result.skipped = advance.reason
        loaded = load_commit(state.source, name, sha, previous=state.loaded, namespaces=self.settings.run_namespaces)
        if isinstance(loaded, BadRepoConfig):
            # A bad repo config applies nothing from this commit (and stops nothing). The next
            # good commit is loaded against the last loaded one, so this commit's changes to
            # operations are applied with it.
            result.invalid = loaded.errors
            result.skipped = "invalid repo config"
            self.store.record_commit(
                name, sha, state.config.branch, revision.committed_at, now, valid=False,
                errors=[_error_row(e) for e in loaded.errors],
            )  # fmt: skip
            return result
        desired = loaded.desired
        config = loaded.config
        previous, state.loaded = state.loaded, loaded
        result.invalid = loaded.errors
        self._record_operations(name, loaded, previous, now)
        observed_all = self.backend.list_owned()
        self._catch_up_statuses(observed_all, now)
        # The database first, then the backend: a run recorded in between is then seen in both,
        # never in the database alone (which would look like drift).
        rows = planner_rows(self.store, name)
        tracked = tracked_state(self.store, name, self.orchestration.tracked, rows)
        observed = self._observed(name, self.backend.list_owned(), rows)
        actions = plan(desired, observed, tracked, now, self.plan_options(config))
        result.plan = actions
        result.next_retry = min((a.not_before for a in actions if a.not_before is not None), default=None)
        result.applied = self.applier.apply(actions, desired, now)
        for action in actions:
            result.actions[action.action.value] = result.actions.get(action.action.value, 0) + 1
        committed_at = revision.committed_at if sha == revision.sha else (last.committed_at if last else now)
        self.store.record_commit(
            name, sha, state.config.branch, committed_at, now, valid=not result.invalid,
            errors=[_error_row(e) for e in result.invalid], plan=(_plan_row(a) for a in actions),
        )  # fmt: skip
        self.metrics.last_applied_commit.labels(repo=name).set(committed_at.timestamp())
        self.metrics.reconcile_duration.labels(repo=name).observe(time.monotonic() - started)
        return result

    def namespace_of(self, config: RepoFileConfig) -> str:
        """Where a repo's runs go: its repo config's namespace, or the daemon's."""
        return config.namespace_or(self.settings.kubernetes.namespace)

    def plan_options(self, config: RepoFileConfig) -> PlanOptions:
        return PlanOptions(
            namespace=self.namespace_of(config),
            prune=config.prune.model_dump(),
            tz=config.timezone,
            self_heal=config.self_heal,
        )

    def _record_operations(self, repo: str, loaded: LoadedCommit, previous: LoadedCommit | None, now: datetime) -> None:
        """Record the operations whose spec, mode or validity changed: those unchanged since the
        last load are skipped here, and of the others (all of them after a start or on taking a
        repo over) `Store.record_operations` writes, in a batch, only those that differ from what
        the database holds. A reconcile of an unchanged repo writes nothing here."""
        desired = loaded.desired
        before = previous.desired if previous is not None else None
        rows = []
        for key, op in desired.ops.items():
            valid = key not in desired.kept
            old = before.ops.get(key) if before is not None else None
            if (
                old is not None
                and before is not None
                and (old.spec_hash, old.mode, key not in before.kept) == (op.spec_hash, op.mode, valid)
            ):
                continue
            rows.append(
                OperationRow(
                    str(key),
                    op.mode.value,
                    spec_hash=op.spec_hash if valid else None,
                    commit_sha=desired.commit,
                    valid=valid,
                )
            )
        with self.store.unit_of_work() as session:
            self.applier.check_fence(repo, session)
            self.store.record_operations(repo, rows, now, session=session)
            # Only a fully valid commit says which operations are gone: an invalid file's
            # operations may be missing from it without being removed (safety rule 1).
            if desired.fully_valid:
                for gone in self.store.mark_removed(repo, [str(k) for k in desired.ops], now, session=session):
                    log.info("operation removed from Git", extra={"repo": repo, "op": gone})

    def tracked_state(self, repo: str) -> TrackedState:
        return tracked_state(self.store, repo, self.orchestration.tracked)

    def _observed(self, repo: str, owned: list[ObservedObject], rows: list[PlannerRun]) -> list[ObservedObject]:
        """What the backend holds of the repo's top-level runs, plus the runs no backend holds by
        design (DAGs, matrices, unschedulable runs), so neither looks like drift."""
        mine = [o for o in owned if o.annotations.get(ANNOTATION_REPO) in (repo, None)]
        names = {run.name for run in rows}
        known = {run.name for run in self.store.runs_named([o.run for o in mine])}
        # The planner adopts what the database lacks and decides on the runs it reads (each op's
        # newest and active ones). The objects of other known runs (older finished runs, children
        # of DAGs and matrices, pull-request previews) are not its business: shown to it, they
        # would look untracked and be adopted again under a name already taken.
        observed = [o for o in mine if o.run not in known or o.run in names]
        for run in rows:
            if run.backend_ref == ORCHESTRATED or run.status == Status.UNSCHEDULABLE:
                key = OpKey.parse(run.op_key)
                observed.append(
                    ObservedObject(
                        run.name,
                        key.slug,
                        run.kind or "job",
                        run.spec_hash,
                        str(run.status),
                        {ANNOTATION_REPO: repo, ANNOTATION_OP_KEY: run.op_key},
                    )
                )
        return observed

    # --- what the orchestration asks of the daemon ----------------------------------------------

    def schedule_options(self, op: OpKey) -> ScheduleOptions:
        state = self.repos.get(op.repo)
        if state is None:
            return ScheduleOptions()
        config = state.repo_config
        return ScheduleOptions(
            tz=config.timezone,
            namespace=self.namespace_of(config),
            concurrency=ConcurrencyPolicy(config.schedules.concurrency_for(op.name)),
            starting_deadline=timedelta(seconds=config.schedules.starting_deadline_for(op.name)),
        )

    def self_heal_of(self, repo: str) -> bool:
        """Whether drift of the repo's long-running objects is re-applied (its repo config)."""
        state = self.repos.get(repo)
        return state.repo_config.self_heal if state is not None else True

    def project_of(self, repo: str) -> str:
        state = self.repos.get(repo)
        return (state.repo_config.project or "") if state is not None else ""

    def outputs_of(self, run: str) -> Mapping[str, Any]:
        """What a finished run reported (DAG params, matrix objectives); empty where unknown."""
        return self.applier.outputs_of(run)

    def resolve_hub(self, op: OpKey, hub_ref: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """A hook's run: the operation `{hubRef, params}` compiled against the repo's hub directory
        at the applied commit and checked as any operation is, so the component's required inputs
        are filled by the hook's params (a component alone never passes that check). None, logged,
        when it does not compile."""
        import json

        from reconciler.spec import Resolver, validate_file

        state = self.repos.get(op.repo)
        if state is None or state.loaded is None or not state.loaded.config.hub_dir:
            return None
        hub_dir = state.loaded.config.hub_dir
        sha = state.loaded.sha
        hook = {"version": 1.1, "kind": "operation", "hubRef": hub_ref}
        if params:
            hook["params"] = {name: {"value": value} for name, value in params.items()}
        # The source serialises its own reads (it is called from the observer thread too).
        resolver = Resolver(hub_dir=hub_dir, read=lambda p: state.source.read_file(sha, p))
        result = validate_file(f"{op.path}#hook:{hub_ref}", json.dumps(hook).encode(), resolver)
        if result.checked is None:
            log.warning("hook %s of %s does not compile: %s", hub_ref, op, first_line(result.errors))
            return None
        return result.checked.effective

    # --- status transitions ---------------------------------------------------------------------

    def _catch_up_statuses(self, observed: list[ObservedObject], now: datetime) -> None:
        """Record statuses the backend reached while no daemon was recording them.

        The observe stream is not durable: a daemon killed between a backend transition and its
        record loses it, and a restarted backend re-attaches to its runs without replaying their
        past (a local run that finished meanwhile is simply found finished). Without this, such a
        run would stay `created` or `running` in the history for ever.
        """
        seen = {o.run: o.status for o in observed if o.status and self.owns(o.annotations.get(ANNOTATION_REPO, ""))}
        for run in self.store.runs_named(list(seen)):
            status = seen.get(run.name)
            if status is None or status == run.status or is_done(run.status):
                continue
            try:
                target = Status(status)
            except ValueError:
                continue
            message = "status found by a reconcile, not seen as it happened"
            self.record_transition(StatusTransition(run.name, target, now, "Observed", message))

    def record_transition(self, transition: StatusTransition) -> None:
        self.applier.transition(transition)

    def record_transitions(self, transitions: list[StatusTransition]) -> None:
        if transitions:
            self.applier.transitions(transitions)

    def _record_report(self, report: RunReport) -> None:
        """Values a backend read from a run as it ran (the local outputs file): as if POSTed."""
        points = [Point(name, step, value) for name, step, value in report.metrics]
        try:
            self.applier.report(report.run, points, report.outputs, report.at)
        except (LookupError, ValueError) as e:  # not ours, or done already: nothing to record
            log.debug("report of %s not recorded: %s", report.run, e)

    # --- the loop -------------------------------------------------------------------------------

    def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                item = self.queue.get(timeout=1.0)
            except ShutDown:
                return
            if item is None:
                continue
            try:
                self._process(item)  # type: ignore[arg-type]
            finally:
                self.queue.done(item)

    def _process(self, item: WorkItem) -> None:
        """Handle one item: the one place that catches, logs, counts and requeues.

        A handler returns when it wants to run again (seconds), or None for never; an exception
        requeues the item with the queue's per-item backoff. Nothing escapes, so a worker never
        dies, whatever a handler meets (a database outage, an API server restart).
        """
        kind = KIND[type(item)]
        try:
            again = self._handlers[type(item)](item)
        except NotOwner as e:
            # Another replica's repo (now): its owner does this; nothing to count or retry here.
            log.info("%s left to the repo's owner: %s", kind, e, extra={"item": _describe(item)})
            again = None if isinstance(item, (ReconcileRepo, CheckPullRequest)) else 1.0
        except Exception as e:
            delay = self.queue.add_rate_limited(item)
            self.metrics.work_errors.labels(kind=kind).inc()
            if isinstance(item, ReconcileRepo):
                self.metrics.reconcile_total.labels(repo=item.repo, result="error").inc()
                self.metrics.queue_retries.labels(repo=item.repo).inc()
            expected = isinstance(e, (SourceError, OSError)) or type(e).__name__.startswith("Transient")
            log.log(
                logging.WARNING if expected else logging.ERROR,
                "%s failed; retrying",
                kind,
                exc_info=not expected,
                extra={"item": _describe(item), "error": str(e), "retry_in": round(delay, 2)},
            )
            return
        finally:
            self._gauge_queue()
        self.queue.forget(item)
        if again is not None and not self._stop.is_set():
            self.queue.add_after(item, again)

    def _gauge_queue(self) -> None:
        waiting = Counter(KIND.get(type(i), "other") for i in self.queue.ready())
        for kind in KIND.values():
            self.metrics.queue_depth.labels(kind=kind).set(waiting.get(kind, 0))

    def _handle_reconcile(self, item: ReconcileRepo) -> float | None:
        state = self.repos.get(item.repo)
        if state is None or not self.owns(item.repo):
            return None
        result = self.reconcile_repo(item.repo)
        outcome = "success" if result.converged else ("invalid" if result.invalid else "error")
        self.metrics.reconcile_total.labels(repo=item.repo, result=outcome).inc()
        log.info(
            "reconciled",
            extra={
                "repo": item.repo,
                "commit": (result.commit or "")[:12],
                "actions": {k: v for k, v in result.actions.items() if k != "noop"},
                "invalid": len(result.invalid),
                "failures": len(result.applied.failures),
                **({"skipped": result.skipped} if result.skipped else {}),
            },
        )
        for error in result.invalid[:10]:
            log.warning("invalid: %s", error, extra={"repo": item.repo})
        if result.next_retry is not None:
            # A failed long-running run is retried when its backoff ends, not at the next poll.
            wait = (result.next_retry - self.clock()).total_seconds()
            return max(1.0, min(state.config.interval, wait))
        return state.config.interval

    def fire_ticks(self) -> None:
        """Fire, skip or record as missed what every schedule has due by now, a batch of
        schedules at a time: each batch's runs are submitted before the next batch is decided.
        Ticks due within the orchestrator's lead are decided too, and their runs created when
        they are due (`Applier.apply_batches`)."""
        now = self.clock()
        self.applier.apply_batches(self.orchestration.due(now, self.owns), now)

    def _handle_ticks(self, _: FireTicks) -> float:
        self.fire_ticks()
        return 30.0

    def resume(self) -> None:
        """Re-drive what a crash interrupted (runs recorded but not started, unconsumed events)."""
        now = self.clock()
        self.applier.apply_work(self.orchestration.resume(now, self.owns), now)

    def _handle_resume(self, _: Resume) -> float:
        self.resume()
        return 60.0

    def _handle_gauges(self, _: Gauges) -> float:
        counts = self.store.count_runs()
        self.metrics.runs.clear()
        for (kind, status), count in counts.items():
            self.metrics.runs.labels(kind=kind, status=status).set(count)
        self.forge.gauge(self.clock())
        return 15.0

    def _handle_retention(self, _: Retention) -> float:
        policy = self.settings.retention
        now = self.clock()
        names = self.store.finished_runs_to_forget(now - timedelta(days=policy.runs_days), policy.keep_per_op)
        if self.sharding is not None:
            names = self.sharding.owned_runs(names)
        for name in names[: policy.batch]:
            self.backend.delete(name)  # the run's objects or files; gone already is no error
        forgotten = self.store.delete_runs(names[: policy.batch])
        if forgotten:
            log.info("retention forgot finished runs", extra={"runs": forgotten})
        # A full batch means more are due: come back soon rather than in an hour.
        return 1.0 if len(names) > policy.batch else policy.interval_seconds

    def _observer(self) -> None:
        """Record what the backend observes. Transitions that come together (a minute's new Jobs
        each seen once) are recorded together (`Applier.transitions`: a transaction per
        `OBSERVED_BATCH`, not per run); one alone is recorded once the backend has been quiet for
        `OBSERVED_QUIET` seconds."""
        while not self._stop.is_set():
            batch: list[StatusTransition] = []
            try:
                for event in self.backend.observe(timeout=OBSERVED_QUIET):
                    if self.sharding is not None and not self.sharding.owns_run(event.run):
                        continue  # another replica's run: its owner records it
                    if isinstance(event, RunReport):
                        self.record_transitions(batch)  # in the order they happened
                        batch = []
                        self._record_report(event)
                    else:
                        batch.append(event)
                        if len(batch) >= OBSERVED_BATCH:
                            self.record_transitions(batch)
                            batch = []
                    if self._stop.is_set():
                        break
                self.record_transitions(batch)
            except Exception:
                log.exception("observing the backend failed; retrying")
                self._stop.wait(1.0)

    # --- health ---------------------------------------------------------------------------------

    def liveness_checks(self) -> list[Check]:
        """What makes the process useless until restarted: a worker or the observer gone."""

        def threads() -> str | None:
            if self._stop.is_set():
                return None
            dead = [t.name for t in self._threads if not t.is_alive()]
            if self.sharding is not None and not self.sharding.alive:
                dead.append("shard")
            return f"threads stopped: {', '.join(dead)}" if dead else None

        return [Check("threads", threads)]

    def _stale_repos(self) -> dict[str, str]:
        """The repos /readyz names, with why."""
        stale: dict[str, str] = {}
        now = self.clock()
        for name, state in self.repos.items():
            if not self.owns(name):
                continue  # another replica's: a replica that owns nothing is ready
            limit = 3 * state.config.interval + 60
            # An unreachable remote shows at once, not only after the age limit (which is
            # hours for a webhook-driven repo); a single failed fetch does not.
            if state.fetch_failures >= FAILED_FETCHES_UNREADY:
                stale[name] = state.last_error or "fetches fail"
            elif state.last_fetch_ok is None:
                # Not fetched yet is the git remote's fault only when a fetch failed; else the
                # first reconcile has not come yet (or failed before fetching).
                stale[name] = state.last_error or "not fetched yet"
            elif (age := (now - state.last_fetch_ok).total_seconds()) > limit:
                stale[name] = state.last_error or f"no fetch for {age:.0f}s (reconciles not running)"
        return stale

    def readiness_checks(self) -> list[Check]:
        def database() -> str | None:
            return self.store.write_problem(self.clock())

        def repos() -> str | None:
            return "; ".join(f"{name}: {why}" for name, why in self._stale_repos().items()) or None

        def backend() -> str | None:
            return self.backend.ready()

        # Report-only: a forge's backlog is named, readiness does not fail for it (README,
        # "When a forge is down").
        forges = Check("forges", lambda: self.forge.backlog_problem(self.clock()), fails=False)
        return [Check("database", database), Check("repos", repos), Check("backend", backend), forges]

    def start(self, *, workers: int = 2, serve: bool = True) -> None:
        if serve:
            # The API token (refuses a bad token file) and the runs' tokens.
            access = Access.from_config(self.settings.server, self.applier.run_tokens)
            app = build_app(
                self.metrics,
                self.readiness_checks(),
                self.extra_routes(),
                self.liveness_checks(),
                access=access,
                routers=self.routers(access),
            )
            self._server = HttpServer(app, self.settings.server.host, self.settings.server.port)
            self._server.start()
            log.info("serving", extra={"address": f"http://{self.settings.server.host}:{self._server.port}"})
        for i in range(workers):
            thread = threading.Thread(target=self._worker, name=f"worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        observer = threading.Thread(target=self._observer, name="observer", daemon=True)
        observer.start()
        self._threads.append(observer)
        for name in self.repos:
            self.queue.add(ReconcileRepo(name))
        for item in (FireTicks(), Resume(), Gauges(), Retention()):
            self.queue.add(item)
        for name in self._swept_repos():
            self.queue.add(SweepPullRequests(name))
        if self.orchestration.timer is not None:
            self.orchestration.timer.start()
            self.orchestration.arm_timer(self.owns)
        self.forge.start()
        if self.sharding is not None:
            self.sharding.bind(
                Delivery(push=self.trigger, pull_request=self.pull_request_event, retry=self._retry_handed_off),
                on_acquired=self._acquired,
                busy=self._idle,
            )
            self.sharding.start()

    # --- sharing the repos with other replicas ------------------------------------------------

    def owns(self, repo: str) -> bool:
        """Whether this replica acts on `repo`: always without sharding, else while it holds the lease."""
        return self.sharding is None or self.sharding.owns(repo)

    def _acquired(self, repos: list[str]) -> None:
        """Repos this replica now owns: loaded afresh (another replica may have moved them on),
        reconciled, their due ticks fired and interrupted runs resumed now."""
        for repo in repos:
            state = self.repos.get(repo)
            if state is not None:
                state.loaded = None
                self.queue.add(ReconcileRepo(repo))
        self.queue.add(FireTicks())
        self.queue.add(Resume())
        self.orchestration.arm_timer(self.owns)

    @contextlib.contextmanager
    def _idle(self, repo: str) -> Iterator[bool]:
        """True, holding the repo's lock for the block, when no reconcile or pull-request check of
        `repo` runs; False (at once) when one does. The shard gives a repo back only when True."""
        state = self.repos.get(repo)
        if state is None:
            yield True
        elif state.lock.acquire(blocking=False):
            try:
                yield True
            finally:
                state.lock.release()
        else:
            yield False

    def _retry_handed_off(self, run: str) -> None:
        self.applier.retry(run, self.clock())

    @property
    def address(self) -> str | None:
        """`http://host:port` of the HTTP server once started (port 0 in the settings picks one)."""
        if self._server is None:
            return None
        return f"http://{self.settings.server.host}:{self._server.port}"

    def address_for_runs(self) -> str | None:
        """The URL local runs reach this server at (127.0.0.1 when it listens everywhere)."""
        if self._server is None:
            return None
        host = self.settings.server.host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"http://{host}:{self._server.port}"

    def wake_ticks(self) -> None:
        """The timer's callback: a schedule is due."""
        self.queue.add(FireTicks())

    # --- pull requests --------------------------------------------------------------------------

    def pull_request_event(self, repo: str, event: Any) -> None:
        """A verified pull-request webhook: checked by a worker, the latest event per PR wins."""
        if self.sharding is not None and not self.owns(repo):
            self.sharding.hand_off_pull_request(repo, event)
            return
        item = CheckPullRequest(repo, int(event.number))
        with self._pull_lock:
            self._pull_requests[item] = event
        self.queue.add(item)

    def _handle_pull_request(self, item: CheckPullRequest) -> None:
        with self._pull_lock:
            event = self._pull_requests.get(item)
        if event is not None and self.sharding is not None and not self.owns(item.repo):
            with self._pull_lock:  # lost the repo while the check waited: its owner checks it
                self._pull_requests.pop(item, None)
            self.sharding.hand_off_pull_request(item.repo, event)
            return None
        if event is None or self.forge.pulls is None:
            return None
        self.forge.pulls.handle(item.repo, event)
        with self._pull_lock:
            if self._pull_requests.get(item) is event:
                self._pull_requests.pop(item, None)
        return None

    def _swept_repos(self) -> list[str]:
        """Repos whose open pull requests are listed now and then (`pull_request_sweep_seconds`)."""
        if self.forge.pulls is None:
            return []
        return [
            name
            for name, state in self.repos.items()
            if state.config.forge is not None
            and state.config.forge.pull_request_sweep_seconds > 0
            and name in self.forge.pulls.clients
        ]

    def _handle_sweep(self, item: SweepPullRequests) -> float | None:
        config = self.repos[item.repo].config
        forge = config.forge
        if forge is None or self.forge.pulls is None:
            return None
        if self.owns(item.repo):  # another replica's repo: its owner sweeps it
            for event in self.forge.pulls.sweep(item.repo):
                if not event.closing and not event.into(config.branch):
                    continue  # into another branch: its webhook is ignored too
                log.info(
                    "pull request found by listing the forge",
                    extra={"repo": item.repo, "pr": event.number, "action": event.action, "head": event.head_sha[:12]},
                )
                self.pull_request_event(item.repo, event)
        return forge.pull_request_sweep_seconds

    def _event_for(self, repo: str, head_sha: str) -> Any:
        with self._pull_lock:
            return next((e for i, e in self._pull_requests.items() if i.repo == repo and e.head_sha == head_sha), None)

    def check_pull_request(self, repo: str, head_sha: str, base_sha: str | None) -> Any:
        """Compile a pull request's head and plan it against what the base branch has applied."""
        from reconciler.forge import PrCheckResult, PreviewPolicy
        from reconciler.plan.report import to_text

        state = self.repos[repo]
        event = self._event_for(repo, head_sha)
        provider = state.config.forge.provider if state.config.forge else "github"
        with state.lock:
            if event is not None:
                pr = GitSource(
                    repo,
                    state.config.url,
                    pull_request_ref(provider, event.number),
                    state.source.path.parent,
                    token_file=state.config.token_file,
                    token_env=state.config.token_env,
                    backoff=Backoff(attempts=1),  # the work queue retries a failed check, not a worker
                )
                try:
                    pr.fetch()
                finally:
                    pr.close()
            loaded = load_commit(state.source, repo, head_sha, namespaces=self.settings.run_namespaces)
            # What may run is the base branch's decision, never the pull request's (forge.trust).
            base = state.source.base_config(base_sha, state.loaded.sha if state.loaded else None)
        if isinstance(loaded, BadRepoConfig):
            return PrCheckResult(False, first_line(loaded.errors), "the repo config is invalid: nothing would change")
        errors = loaded.errors
        actions = plan(loaded.desired, None, self.tracked_state(repo), self.clock(), self.plan_options(loaded.config))
        previews = preview_ops(loaded.desired, base)
        return PrCheckResult(not errors, first_line(errors), to_text(actions), previews, PreviewPolicy.of(base))

    def extra_routes(self) -> list[Any]:
        return [*self.forge.routes, *self.routes]

    def routers(self, access: Access | None = None) -> list[Any]:
        """The API and the dashboard (`access`: how a browser signs in)."""
        from reconciler.server.api import api_router
        from reconciler.server.pages import page_router

        return [
            api_router(
                self.store,
                self.sharding.runs(self.applier, self.applier.retry_request) if self.sharding else self.applier,
                self.trigger,
                self,
                self.clock,
            ),
            page_router(self.store, self.applier, self, access, self.clock),
        ]

    # --- what the API and the dashboard ask (server.data.DaemonView) ---------------------------

    def repos_live(self) -> list[Any]:
        from reconciler.server.data import RepoLive

        problems = self._stale_repos()
        return [
            RepoLive(
                name, s.config.url, s.config.branch, s.config.interval, s.head, s.last_fetch_ok, s.last_error,
                problems.get(name),
            )
            for name, s in self.repos.items()
        ]  # fmt: skip

    def compiled_spec(self, op_key: str) -> dict[str, Any] | None:
        try:
            key = OpKey.parse(op_key)
        except ValueError:
            return None
        state = self.repos.get(key.repo)
        if state is None or state.loaded is None:
            return None
        op = state.loaded.desired.ops.get(key)
        return dict(op.effective) if op is not None else None

    def timezone_of(self, repo: str) -> str:
        state = self.repos.get(repo)
        return state.repo_config.timezone if state is not None else "UTC"

    def on_push(self, repo: str, _sha: str | None) -> None:
        self.trigger(repo)

    def trigger(self, repo: str) -> bool:
        """Reconcile `repo` now (a push webhook); False when no such repo is configured."""
        if repo not in self.repos:
            return False
        if self.sharding is not None and not self.owns(repo):
            self.sharding.hand_off(repo, PUSH)  # its owner reconciles it
            return True
        self.queue.add(ReconcileRepo(repo))
        return True

    def stop(self, deadline: float = 30.0) -> None:
        """Stop taking work, let in-flight reconciles finish within `deadline`, then close."""
        self._stop.set()
        self.applier.stopping.set()  # runs held for their tick stay recorded for the next resume
        if self.orchestration.timer is not None:
            self.orchestration.timer.stop()
        self.queue.shut_down()
        end = time.monotonic() + deadline
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        if self.sharding is not None:
            self.sharding.stop()  # in-flight work has ended: the others may take the repos now
        if self._server is not None:
            self._server.stop()
        self.forge.stop()
        for state in self.repos.values():
            state.source.close()
        self.backend.close()

    def close_without_serving(self) -> None:
        """Close the adapters of a daemon used for one pass (`reconciler sync`)."""
        for state in self.repos.values():
            state.source.close()
        self.backend.close()
        self.store.close()

    def run_forever(self, deadline: float = 30.0) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully."""
        received: list[int] = []

        def handle(signum: int, _frame: FrameType | None) -> None:
            received.append(signum)
            self._stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handle)
        self.start()
        while not self._stop.wait(1.0):
            pass
        log.info("shutting down", extra={"signal": received[0] if received else None})
        self.stop(deadline)


def _describe(item: WorkItem) -> str:
    if isinstance(item, ReconcileRepo):
        return f"repo {item.repo}"
    if isinstance(item, CheckPullRequest):
        return f"pull request {item.repo}#{item.number}"
    if isinstance(item, SweepPullRequests):
        return f"open pull requests of {item.repo}"
    return KIND[type(item)]


def _plan_row(action: Action) -> dict[str, Any]:
    run = action.run.name if action.run is not None else action.target
    return {"action": action.action.value, "op": str(action.op), "run": run, "reason": action.reason}


def _error_row(error: Located) -> dict[str, Any]:
    return {"file": error.path, "line": error.line, "column": error.column, "message": error.message}


__all__ = [
    "CheckPullRequest",
    "Daemon",
    "FireTicks",
    "Gauges",
    "ReconcileRepo",
    "ReconcileResult",
    "Resume",
    "Retention",
    "SweepPullRequests",
    "WorkItem",
]
