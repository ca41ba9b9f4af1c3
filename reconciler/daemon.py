"""The daemon: builds the adapters, owns the work queue, and runs one reconcile per repo at a time.

One reconcile = fetch -> compile -> plan -> apply -> record (`Daemon.reconcile_repo`). Repos are
keys of a rate-limited work queue (`reconciler.workqueue`): a repo is never reconciled by two
workers at once, a webhook during a reconcile is not lost, failures are retried with capped
exponential backoff, and each success is re-queued after the repo's poll interval. One repo's
failure never blocks another. Status transitions from the backend are recorded as they happen by
an observer thread. This module is the only place that knows every adapter (style.md).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from reconciler import repo_config as rc
from reconciler.apply import Applier, ApplyResult, StatusReporter
from reconciler.backends import Backend, TransientBackendError
from reconciler.compile import CompileOptions, CompileResult, compile_repo
from reconciler.config import RepoConfig, Settings
from reconciler.errors import Located, first_line
from reconciler.metrics import Metrics
from reconciler.model import Cause, DesiredState, ObservedObject, OpKey, RunRequest, StatusTransition
from reconciler.orchestration import Orchestrator, Timer, Work
from reconciler.orchestration.specs import CAUSE_OF_KIND
from reconciler.plan import PlanOptions, TrackedState, plan
from reconciler.server import Access, Check, HttpServer, build_app
from reconciler.snapshot import tracked_state
from reconciler.source import Backoff, GitSource, SourceError
from reconciler.statuses import Status, is_done
from reconciler.tracking import CauseKind, IllegalTransition, NotFound, Run, Store
from reconciler.workqueue import ShutDown, WorkQueue

log = logging.getLogger("reconciler")


# Failed fetches in a row (each retried by the work queue after a short backoff) after which
# /readyz reports the repo: enough to ride out one dropped connection.
FAILED_FETCHES_UNREADY = 3


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RepoState:
    config: RepoConfig
    source: GitSource
    repo_config: rc.RepoFileConfig = field(default_factory=rc.RepoFileConfig)  # at the applied commit
    commit: str | None = None  # the applied commit
    compiled: CompileResult | None = None
    last_fetch_ok: datetime | None = None
    last_error: str | None = None
    fetch_failures: int = 0  # in a row, since the last successful fetch


@dataclass
class ReconcileResult:
    repo: str
    commit: str | None = None
    skipped: str | None = None  # why nothing was applied (unchanged, ignored head, bad repo config)
    invalid: list[Located] = field(default_factory=list)
    applied: ApplyResult = field(default_factory=ApplyResult)
    actions: dict[str, int] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        return not self.invalid and self.applied.ok


def request_from_run(run: Run, op_key: str, namespace: str) -> RunRequest | None:
    """Rebuild what a backend needs from the tracking DB (to start a run recorded before a crash)."""
    if run.spec is None or run.kind is None:
        return None
    return RunRequest(
        name=run.name,
        op=OpKey.parse(op_key),
        kind=run.kind,
        spec_hash=run.spec_hash,
        effective=dict(run.spec),
        cause=CAUSE_OF_KIND.get(CauseKind(run.cause_kind), Cause.COMMIT),
        cause_id=run.cause_id,
        commit=run.commit_sha or "",
        namespace=namespace,
    )


class Daemon:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        backend: Backend,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        orchestration: Orchestrator | None = None,
        reporter: StatusReporter | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.backend = backend
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.queue = WorkQueue()
        if orchestration is None:
            orchestration = Orchestrator(
                store,
                backend_name=backend.name,
                options_for=self.schedule_options,
                outputs_of=self.outputs_of,
                resolve_hub=self.resolve_hub,
                timer=Timer(store.engine, lambda: self.queue.add("ticks")),
            )
        self.orchestration: Orchestrator = orchestration
        from reconciler.forge_wiring import build_forge_wiring

        self.forge = build_forge_wiring(
            settings,
            store,
            backend,
            on_push=self._on_push,
            on_pull_request=self.pull_request_event,
            check_pull_request=self.check_pull_request,
            clock=clock,
        )
        self.applier = Applier(
            store, backend, orchestration=orchestration, reporter=reporter or self.forge, apply_work=self.apply_work
        )
        self.repos: dict[str, RepoState] = {}
        self._git_locks: dict[str, threading.Lock] = {}
        self._pull_requests: dict[str, tuple[str, Any]] = {}
        git_dir = Path(settings.data_dir) / "git"
        for repo in settings.repos:
            source = GitSource(
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
            self.repos[repo.name] = RepoState(repo, source)
            self._git_locks[repo.name] = threading.Lock()
        self.routes: list[Any] = []  # more HTTP routes (webhooks) added by whoever builds the daemon
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: HttpServer | None = None

    # --- one reconcile --------------------------------------------------------------------------

    def reconcile_repo(self, name: str) -> ReconcileResult:
        with self._git_locks[name]:
            result = self._reconcile_repo(name)
        if result.commit is not None and not result.skipped:
            self.forge.validated(name, result.commit, result.invalid, self.clock())
        return result

    def _reconcile_repo(self, name: str) -> ReconcileResult:
        state = self.repos[name]
        result = ReconcileResult(name)
        started = time.monotonic()
        now = self.clock()
        self.store.ensure_repo(name, state.config.url, state.config.branch, now)
        fetch_started = time.monotonic()
        try:
            revision = state.source.fetch()
        except SourceError as e:
            self.metrics.git_fetch_errors.labels(repo=name, kind=type(e).__name__).inc()
            state.last_error = str(e)
            state.fetch_failures += 1
            raise
        finally:
            self.metrics.git_fetch_duration.labels(repo=name).observe(time.monotonic() - fetch_started)
        state.last_fetch_ok, state.last_error, state.fetch_failures = now, None, 0
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
        config = state.source.repo_config(sha)
        if isinstance(config, list):
            # A bad repo config applies nothing from this commit (and stops nothing).
            result.invalid = config
            result.skipped = "invalid repo config"
            self.store.record_commit(
                name,
                sha,
                state.config.branch,
                revision.committed_at,
                now,
                valid=False,
                errors=[_error_row(e) for e in config],
            )
            return result
        state.repo_config, state.commit = config, sha
        changed: set[str] | None = None
        if state.compiled is not None and last is not None:
            changed = set() if last.sha == sha else set(state.source.changed_files(last.sha, sha).paths)
        patterns = list(config.watch) + ([f"{config.hub_dir.rstrip('/')}/**"] if config.hub_dir else [])
        files = state.source.files_at(sha, patterns, ignore=config.ignore)
        options = CompileOptions(repo=name, hub_dir=config.hub_dir, previews=tuple(config.previews))
        previous = state.compiled if state.compiled is not None and state.compiled.options == options else None
        compiled = compile_repo(files.files, options, sha, previous=previous, changed=changed if previous else None)
        desired = compiled.desired
        result.invalid = [e for f in desired.invalid.values() for e in f.errors]
        self._record_operations(name, desired, now)
        self.applier.resubmit_pending(name, now, lambda run, key: request_from_run(run, key, config.namespace))
        self._catch_up_statuses(name, self.backend.list_owned(), now)
        # The database first, then the backend: a run recorded in between is then seen in both,
        # never in the database alone (which would look like drift).
        tracked = self.tracked_state(name)
        observed = self._observed(name)
        actions = plan(
            desired,
            observed,
            tracked,
            now,
            PlanOptions(namespace=config.namespace, prune=config.prune.model_dump(), tz=config.timezone),
        )
        result.applied = self.applier.apply(actions, desired, now)
        for action in actions:
            result.actions[action.action.value] = result.actions.get(action.action.value, 0) + 1
        committed_at = revision.committed_at if sha == revision.sha else (last.committed_at if last else now)
        self.store.record_commit(
            name,
            sha,
            state.config.branch,
            committed_at,
            now,
            valid=not result.invalid,
            errors=[_error_row(e) for e in result.invalid],
        )
        state.compiled = compiled
        self.metrics.last_applied_commit.labels(repo=name).set(committed_at.timestamp())
        self.metrics.reconcile_duration.labels(repo=name).observe(time.monotonic() - started)
        return result

    def _record_operations(self, repo: str, desired: DesiredState, now: datetime) -> None:
        with self.store.unit_of_work() as session:
            for key, op in desired.ops.items():
                valid = key not in desired.kept
                self.store.upsert_operation(
                    str(key),
                    repo,
                    op.mode.value,
                    now,
                    spec_hash=op.spec_hash if valid else None,
                    commit_sha=desired.commit,
                    valid=valid,
                    session=session,
                )

    def tracked_state(self, repo: str) -> TrackedState:
        return tracked_state(self.store, repo, self.orchestration.tracked)

    def _observed(self, repo: str) -> list[ObservedObject]:
        from reconciler.model import ANNOTATION_OP_KEY, ANNOTATION_REPO

        runs = self.store.list_runs(repo=repo)
        # Children of DAGs and matrices, and pull-request previews, are not the tracked branch's
        # operations: the planner must neither adopt nor prune them.
        hidden = {run.name for run, _ in runs if run.parent is not None or run.cause_kind == CauseKind.PREVIEW}
        observed = [
            o
            for o in self.backend.list_owned()
            if o.annotations.get(ANNOTATION_REPO) in (repo, None) and o.run not in hidden
        ]
        # DAG and matrix runs live in the orchestrator, and an unschedulable run has no object by
        # definition: neither is drift.
        for run, op_key in runs:
            if run.name in hidden:
                continue
            if run.backend_ref == "orchestrated" or run.status == Status.UNSCHEDULABLE:
                key = OpKey.parse(op_key)
                observed.append(
                    ObservedObject(
                        run.name,
                        key.slug,
                        run.kind or "job",
                        run.spec_hash,
                        str(run.status),
                        {ANNOTATION_REPO: repo, ANNOTATION_OP_KEY: op_key},
                    )
                )
        return observed

    # --- what the orchestration asks of the daemon ----------------------------------------------

    def schedule_options(self, op: OpKey) -> Any:
        from reconciler.orchestration import ScheduleOptions

        state = self.repos.get(op.repo)
        if state is None:
            return ScheduleOptions()
        return ScheduleOptions(tz=state.repo_config.timezone, namespace=state.repo_config.namespace)

    def outputs_of(self, run: str) -> Mapping[str, Any]:
        """What a finished run reported (DAG params, matrix objectives); empty where unknown."""
        read = getattr(self.backend, "outputs", None)
        if read is None:
            return {}
        try:
            found = read(run)
        except Exception:
            return {}
        return dict(found) if isinstance(found, Mapping) else {}

    def resolve_hub(self, op: OpKey, hub_ref: str) -> dict[str, Any] | None:
        """A hook's component from the repo's hub directory at the applied commit."""
        from reconciler.spec import Resolver, validate_file

        state = self.repos.get(op.repo)
        hub_dir = state.repo_config.hub_dir if state is not None else None
        if state is None or state.commit is None or not hub_dir:
            return None
        name, _, tag = hub_ref.split("/")[-1].partition(":")
        path = f"{hub_dir.rstrip('/')}/{name}/{tag or 'latest'}.yaml"
        sha = state.commit
        data = state.source.read_file(sha, path)
        if data is None:
            return None
        result = validate_file(path, data, Resolver(hub_dir=hub_dir, read=lambda p: state.source.read_file(sha, p)))
        return result.checked.effective if result.checked is not None else None

    # --- status transitions ---------------------------------------------------------------------

    def _catch_up_statuses(self, repo: str, observed: list[ObservedObject], now: datetime) -> None:
        """Record statuses the backend reached while no daemon was recording them.

        The observe stream is not durable: a daemon killed between a backend transition and its
        record loses it, and a restarted backend re-attaches to its runs without replaying their
        past (a local run that finished meanwhile is simply found finished). Without this, such a
        run would stay `created` or `running` in the history for ever.
        """
        seen = {o.run: o.status for o in observed if o.status}
        for run, _ in self.store.list_runs(repo=repo):
            status = seen.get(run.name)
            if status is None or status == run.status or is_done(Status(run.status)):
                continue
            try:
                target = Status(status)
            except ValueError:
                continue
            message = "status found by a reconcile, not seen as it happened"
            self.record_transition(StatusTransition(run.name, target, now, "Observed", message))

    def record_transition(self, transition: StatusTransition) -> None:
        try:
            change = self.store.transition(
                transition.run,
                Status(transition.status),
                at=transition.at,
                reason=transition.reason or None,
                message=transition.message or None,
            )
        except NotFound:
            return  # not a run we track (yet): adoption records it
        except IllegalTransition as e:
            log.debug("run %s: %s", transition.run, e)
            return
        if change is None:
            return
        self.metrics.runs_transitions.labels(status=transition.status).inc()
        if self.applier.reporter is not None:
            self.applier.reporter.run_status(None, transition.run, Status(transition.status), transition.at)
        self.apply_work(self.orchestration.on_transition(transition, self.clock()), self.clock())

    def apply_work(self, work: Work | None, now: datetime) -> None:
        """Apply what the orchestration asks for: new runs (children, ticks, events), statuses, stops."""
        if work is None:
            return
        for notice in work.notices:
            log.warning("%s: %s", notice.reason, notice.message, extra={"subject": notice.subject})
        for update in work.updates:
            self.record_transition(StatusTransition(update.run, update.status, now, update.reason, update.message))
        for new in work.new_runs:
            self.applier.create(new.request, now, parent=new.parent, status=Status(new.status))
        for name in work.stops:
            self.backend.stop(name)

    # --- the loop -------------------------------------------------------------------------------

    def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                key = self.queue.get(timeout=1.0)
            except ShutDown:
                return
            if key is None:
                continue
            try:
                self._process(str(key))
            finally:
                self.queue.done(key)
            self.metrics.queue_depth.set(self.queue.depth)

    def _process(self, key: str) -> None:
        if key.startswith("pr:"):
            self._check_pull_request(key)
            return
        if key == "ticks":
            # The timer wakes this key at each schedule's next tick; the slow poll is a fallback.
            now = self.clock()
            self.apply_work(self.orchestration.due(now), now)
            self.queue.add_after("ticks", 30.0)
            return
        if key == "resume":
            # Re-drive what a crash interrupted (unsubmitted runs, unconsumed transitions).
            now = self.clock()
            self.apply_work(self.orchestration.resume(now), now)
            self.queue.add_after("resume", 60.0)
            return
        if key == "gauges":
            self.metrics.runs.clear()
            for (kind, status), count in self.store.count_runs().items():
                self.metrics.runs.labels(kind=kind, status=status).set(count)
            self.queue.add_after("gauges", 15.0)
            return
        state = self.repos.get(key)
        if state is None:
            return
        try:
            result = self.reconcile_repo(key)
        except (SourceError, TransientBackendError, OSError) as e:
            delay = self.queue.add_rate_limited(key)
            self.metrics.reconcile_total.labels(repo=key, result="error").inc()
            self.metrics.queue_retries.labels(repo=key).inc()
            log.warning("reconcile failed; retrying", extra={"repo": key, "error": str(e), "retry_in": round(delay, 2)})
            return
        except Exception as e:
            delay = self.queue.add_rate_limited(key)
            self.metrics.reconcile_total.labels(repo=key, result="error").inc()
            log.exception(
                "reconcile crashed; retrying", extra={"repo": key, "retry_in": round(delay, 2), "error": str(e)}
            )
            return
        self.queue.forget(key)
        outcome = "success" if result.converged else ("invalid" if result.invalid else "error")
        self.metrics.reconcile_total.labels(repo=key, result=outcome).inc()
        log.info(
            "reconciled",
            extra={
                "repo": key,
                "commit": (result.commit or "")[:12],
                "actions": {k: v for k, v in result.actions.items() if k != "noop"},
                "invalid": len(result.invalid),
                "failures": len(result.applied.failures),
                **({"skipped": result.skipped} if result.skipped else {}),
            },
        )
        for error in result.invalid[:10]:
            log.warning("invalid: %s", error, extra={"repo": key})
        self.queue.add_after(key, state.config.interval)

    def _observer(self) -> None:
        while not self._stop.is_set():
            try:
                for transition in self.backend.observe(timeout=1.0):
                    self.record_transition(transition)
                    if self._stop.is_set():
                        break
            except Exception:
                log.exception("observing the backend failed; retrying")
                self._stop.wait(1.0)

    def readiness_checks(self) -> list[Check]:
        def database() -> str | None:
            return self.store.write_problem(self.clock())

        def repos() -> str | None:
            stale = []
            now = self.clock()
            for name, state in self.repos.items():
                limit = 3 * state.config.interval + 60
                if (
                    state.last_fetch_ok is None
                    or (now - state.last_fetch_ok).total_seconds() > limit
                    # An unreachable remote shows at once, not only after the age limit (which
                    # is hours for a webhook-driven repo); a single failed fetch does not.
                    or state.fetch_failures >= FAILED_FETCHES_UNREADY
                ):
                    stale.append(f"{name}: {state.last_error or 'no successful fetch yet'}")
            return "; ".join(stale) or None

        def backend() -> str | None:
            try:
                self.backend.list_owned()
            except Exception as e:
                return f"{type(e).__name__}: {e}"
            return None

        return [Check("database", database), Check("repos", repos), Check("backend", backend)]

    def start(self, *, workers: int = 2, serve: bool = True) -> None:
        if serve:
            access = Access.from_config(self.settings.server)  # the API token; refuses a bad token file
            app = build_app(self.metrics, self.readiness_checks(), self.extra_routes(), access=access)
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
            self.queue.add(name)
        self.queue.add("ticks")
        self.queue.add("resume")
        self.queue.add("gauges")
        if self.orchestration.timer is not None:
            self.orchestration.timer.start()
            self.orchestration.arm_timer()
        self.forge.start()

    # --- pull requests --------------------------------------------------------------------------

    def pull_request_event(self, repo: str, event: Any) -> None:
        """A verified pull-request webhook: checked by a worker, the latest event per PR wins."""
        key = f"pr:{repo}:{event.number}"
        self._pull_requests[key] = (repo, event)
        self.queue.add(key)

    def _check_pull_request(self, key: str) -> None:
        found = self._pull_requests.get(key)
        if found is None or self.forge.pulls is None:
            return
        repo, event = found
        try:
            self.forge.pulls.handle(repo, event)
        except Exception as e:
            delay = self.queue.add_rate_limited(key)
            log.warning("pull request check failed; retrying", extra={"pr": key, "error": str(e), "retry_in": delay})
            return
        self.queue.forget(key)
        if self._pull_requests.get(key) == found:
            self._pull_requests.pop(key, None)

    def check_pull_request(self, repo: str, head_sha: str, base_sha: str | None) -> Any:
        """Compile a pull request's head and plan it against what the base branch has applied."""
        from reconciler.forge import PrCheckResult, PreviewPolicy
        from reconciler.forge_wiring import preview_ops, pull_request_ref
        from reconciler.plan.report import to_text

        state = self.repos[repo]
        event = next((e for r, e in self._pull_requests.values() if r == repo and e.head_sha == head_sha), None)
        provider = state.config.forge.provider if state.config.forge else "github"
        with self._git_locks[repo]:
            if event is not None:
                pr = GitSource(
                    repo,
                    state.config.url,
                    pull_request_ref(provider, event.number),
                    Path(self.settings.data_dir) / "git",
                    token_file=state.config.token_file,
                    token_env=state.config.token_env,
                    backoff=Backoff(attempts=1),  # the work queue retries a failed check, not a worker
                )
                try:
                    pr.fetch()
                finally:
                    pr.close()
            config = state.source.repo_config(head_sha)
            if isinstance(config, list):
                return PrCheckResult(False, first_line(config), "the repo config is invalid: nothing would change")
            files = state.source.files_at(head_sha, list(config.watch), ignore=config.ignore)
            # What may run is the base branch's decision, never the pull request's (forge.trust).
            base = state.source.base_config(base_sha, state.commit)
        options = CompileOptions(repo=repo, hub_dir=config.hub_dir, previews=tuple(config.previews))
        desired = compile_repo(files.files, options, head_sha).desired
        errors = [e for f in desired.invalid.values() for e in f.errors]
        actions = plan(
            desired,
            None,
            self.tracked_state(repo),
            self.clock(),
            PlanOptions(namespace=config.namespace, prune=config.prune.model_dump(), tz=config.timezone),
        )
        previews = preview_ops(desired, base)
        return PrCheckResult(not errors, first_line(errors), to_text(actions), previews, PreviewPolicy.of(base))

    def extra_routes(self) -> list[Any]:
        from reconciler.server.api import api_routes
        from reconciler.server.pages import page_routes

        return [
            *api_routes(self.store, self.backend, self.trigger),
            *page_routes(self.store),
            *self.forge.routes,
            *self.routes,
        ]

    def _on_push(self, repo: str, _sha: str | None) -> None:
        self.trigger(repo)

    def trigger(self, repo: str) -> bool:
        """Reconcile `repo` now (a push webhook); False when no such repo is configured."""
        if repo not in self.repos:
            return False
        self.queue.add(repo)
        return True

    def stop(self, deadline: float = 30.0) -> None:
        """Stop taking work, let in-flight reconciles finish within `deadline`, then close."""
        self._stop.set()
        if self.orchestration.timer is not None:
            self.orchestration.timer.stop()
        self.queue.shut_down()
        end = time.monotonic() + deadline
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
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


def _error_row(error: Located) -> dict[str, Any]:
    return {"file": error.path, "line": error.line, "column": error.column, "message": error.message}


__all__ = ["Daemon", "ReconcileResult", "request_from_run"]
