"""The applier: the one place where decisions meet the backend and the tracking DB.

Every run comes into being through `Applier.record` (commit, schedule tick, event, DAG op and
matrix trial, hook, retry, adoption, pull-request preview), and every status a run enters is
recorded through `Applier.transition`. Each writes the run's change and the commit status it
causes (the reporter's outbox row) in one transaction, so a crash can lose neither one without
the other.

Order within a run's creation is what makes crashes harmless: the run is recorded first
(idempotent on (operation, cause)), then started (idempotent on the run name: an existing object
with our labels is adopted). A crash between the two leaves a recorded run without a backend
reference, which the orchestrator's `resume()` hands back to `create()` on the next pass: never
two runs, never a lost one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from reconciler.backends import Backend, BackendError, PermanentBackendError, TransientBackendError
from reconciler.metrics import Metrics
from reconciler.model import (
    ANNOTATION_COMMIT,
    ANNOTATION_OP_KEY,
    DRIFT_CORRECTED,
    Cause,
    DesiredState,
    LogSlice,
    Mode,
    ObservedObject,
    OpKey,
    RunRequest,
    StatusTransition,
)
from reconciler.model import run_name as run_name_of
from reconciler.orchestration import Work
from reconciler.orchestration.specs import container_of
from reconciler.orchestration.tree import ORCHESTRATED
from reconciler.plan.actions import Action, ActionKind
from reconciler.runtokens import RunTokens
from reconciler.sharding import NotOwner
from reconciler.statuses import Status, is_done
from reconciler.tracking import IllegalTransition, NotFound, Point, Run, Store, Tx

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def is_orchestrated(run: RunRequest) -> bool:
    """A DAG or an op with a matrix: the orchestrator expands it, no backend runs it."""
    return container_of(run.effective) is not None


class Orchestration(Protocol):
    """What the applier needs from the orchestration adapter (schedules, events, DAGs, matrices)."""

    def sync(self, actions: Sequence[Action], desired: DesiredState, now: datetime) -> Work: ...

    def start(self, run: RunRequest, now: datetime) -> Work: ...

    def on_transition(self, transition: StatusTransition, now: datetime) -> Work: ...

    def on_report(self, run: str, now: datetime) -> Work: ...


class StatusReporter(Protocol):
    """Commit statuses for the forge, queued in the caller's transaction (see `reconciler.forge`)."""

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
        """Queue the commit status reporting `run` in `status`; True when a row was queued."""
        ...

    def wake(self) -> None:
        """Rows were queued: post them now rather than at the next poll."""
        ...


class Fence(Protocol):
    """Whether this replica may act on a repo now (`reconciler.sharding.Shard`): raises NotOwner
    when not, inside the caller's transaction when it has one."""

    def check(self, repo: str, session: Tx | None = None) -> None: ...


class RunNotStarted(Exception):
    """The backend refused a run for good; it is recorded so, and the plan counts a failure."""


@dataclass
class ApplyResult:
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (what, why)

    @property
    def ok(self) -> bool:
        return not self.failures


class Applier:
    def __init__(
        self,
        store: Store,
        backend: Backend,
        *,
        reporter: StatusReporter | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        project_of: Callable[[str], str] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        # The Polyaxon project of a repo's runs (its repo config `project`; empty: the repo name).
        self.project_of = project_of
        self.backend = backend
        self.reporter = reporter
        self.metrics = metrics
        # Set by whoever wires the daemon: the orchestrator records its runs through this applier,
        # so each needs the other.
        self.orchestration: Orchestration | None = None
        # The runs' report tokens (POLYAXON_RUN_TOKEN), when the daemon hands them out.
        self.run_tokens: RunTokens | None = None
        # Replicas sharing the repos: asked before every write that starts something.
        self.fence: Fence | None = None

    def check_fence(self, repo: str, session: Tx | None = None) -> None:
        """Raise NotOwner unless this replica may act on `repo` (always may, without sharding)."""
        if self.fence is not None:
            self.fence.check(repo, session)

    # --- the one way a run comes into being -----------------------------------------------------

    def record(
        self,
        request: RunRequest,
        now: datetime,
        *,
        session: Tx,
        parent: str | None = None,
        status: Status = Status.CREATED,
        final: tuple[Status, str, str] | None = None,
        node: str | None = None,
        trial_index: int | None = None,
        meta: Mapping[str, Any] | None = None,
        child_mode: str | None = None,
        reason: str | None = None,
        message: str | None = None,
        spec_known: bool = True,
    ) -> tuple[Run, bool]:
        """Record `request` once, in `session`; (the run, whether it is new).

        A new run's first status goes to the outbox with it. `final` records a run that never
        starts (a skipped tick, a DAG op marked skipped or upstream_failed) straight into that
        status. `child_mode` makes the operation row of a DAG op, trial or hook (`<op>.<child>`)
        on first use; a top-level run's operation must be tracked already.
        """
        self.check_fence(request.op.repo, session)  # in the transaction: no takeover until it ends
        if child_mode is not None:
            self.store.upsert_operation(
                str(request.op),
                request.op.repo,
                child_mode,
                now,
                spec_hash=request.spec_hash,
                commit_sha=request.commit or None,
                session=session,
            )
        created = self.store.create_run(
            op_key=str(request.op),
            cause=request.cause,
            cause_id=request.cause_id,
            name=request.name,
            spec_hash=request.spec_hash,
            backend=self.backend.name,
            now=now,
            commit_sha=request.commit or None,
            status=status,
            reason=reason,
            message=message,
            kind=request.kind,
            spec=request.effective if spec_known else None,
            parent=parent,
            namespace=request.namespace,
            params=request.params,
            node=node,
            trial_index=trial_index,
            meta=meta,
            session=session,
        )
        if created.created:
            self._report(created.run, request.op, status, now, reason, message, session)
            if final is not None:
                to, why, text = final
                if self.store.transition(created.run, to, at=now, reason=why, message=text, session=session):
                    self._report(created.run, request.op, to, now, why, text, session)
        return created.run, created.created

    def create(
        self, request: RunRequest, now: datetime, *, parent: str | None = None, status: Status = Status.CREATED
    ) -> str | None:
        """Record then start a run (nothing done twice); returns why it could not be started, if so.

        A run recorded earlier but never started (a crash between the two steps, or a run the
        orchestrator recorded in its own transaction) is started now.
        """
        with self.store.unit_of_work() as tx:
            run, new = self.record(request, now, session=tx, parent=parent, status=status)
        self._wake()
        if new or (run.backend_ref is None and run.status in (Status.CREATED, Status.ON_SCHEDULE)):
            return self.start(request, now)
        return None

    def start(self, run: RunRequest, now: datetime) -> str | None:
        """Hand a recorded run to its backend (or expand it); returns why it could not start.

        A backend's permanent refusal (a missing operator, an invalid object) is recorded on the
        run as its final status and returned; a transient one propagates to be retried."""
        self.check_fence(run.op.repo)
        if is_orchestrated(run):
            if self.orchestration is None:
                why = "DAGs and matrices need the daemon"
                self._fail(run.name, Status.UNSCHEDULABLE, "NoOrchestrator", why, now)
                return why
            work = self.orchestration.start(run, now)
            self.store.set_backend_ref(run.name, ORCHESTRATED, now)
            self.apply_work(work, now)
            return None
        if not run.project and self.project_of is not None:
            run = dataclasses.replace(run, project=self.project_of(run.op.repo))
        try:
            ref = self.backend.submit(run)
        except PermanentBackendError as e:
            self._fail(run.name, Status(e.status or "failed"), type(e).__name__, str(e), now)
            return f"{e.status or 'failed'}: {e}"
        self.store.set_backend_ref(run.name, ref, now)
        return None

    def retry(self, run_name: str, now: datetime) -> str:
        """Run a finished run again, as a new run of the same operation and spec (cause `retry`,
        cause id `retry:<first run>:<n>`); returns the new run's name. LookupError for an unknown
        run, ValueError for one that is not done yet."""
        request = self.retry_request(run_name)
        problem = self.create(request, now)
        if problem is not None:
            log.warning("retry of %s could not start: %s", run_name, problem)
        return request.name

    def retry_request(self, run_name: str) -> RunRequest:
        """The run `retry` would create (LookupError, ValueError as for `retry`); nothing written."""
        run = self.store.run(run_name)
        if run is None:
            raise LookupError(f"no run named {run_name}")
        if not is_done(run.status):
            raise ValueError(f"run {run_name} is {run.status}: only a finished run can be retried")
        original = self.store.request_of(run)
        root = run_name
        if run.cause == Cause.RETRY and run.cause_id.count(":") == 2:
            root = run.cause_id.split(":")[1]  # a retry of a retry follows the same first run
        base = self.store.run(root) or run
        cause_id = f"retry:{root}:{self.store.retries_of(base) + 1}"
        return dataclasses.replace(
            original, name=run_name_of(original.op, original.spec_hash, cause_id), cause=Cause.RETRY, cause_id=cause_id
        )

    def stop(self, run_name: str) -> None:
        """Ask a run to stop. A DAG or matrix has no backend object: it is recorded stopped, and
        its active children are stopped in turn (the orchestrator's answer to that transition)."""
        run = self.store.run(run_name)
        if run is not None and run.backend_ref == ORCHESTRATED:
            if not is_done(run.status):
                self.transition(StatusTransition(run_name, Status.STOPPED, self.clock(), "Stopped", "stop requested"))
            return
        self.backend.stop(run_name)

    def delete(self, run_name: str) -> None:
        """Remove a run's objects (what is gone already is no error)."""
        self.backend.delete(run_name)

    def logs(self, run_name: str, tail: int | None = None) -> str:
        """The run's logs as its backend keeps them; LookupError for a run it does not know."""
        if self.store.run(run_name) is None:
            raise LookupError(f"no run named {run_name}")
        try:
            return self.backend.logs(run_name, tail)
        except BackendError as e:
            raise LookupError(str(e)) from e

    def read_log(self, run_name: str, offset: int, limit: int) -> LogSlice:
        """Up to `limit` bytes of the run's log from `offset`, its size now, and whether the run is
        done (then nothing more will come): what following a log reads, a slice at a time."""
        run = self.store.run(run_name)
        if run is None:
            raise LookupError(f"no run named {run_name}")
        done = is_done(run.status)  # read before the log: a done run's log is then complete
        read = getattr(self.backend, "read_log", None)
        try:
            if read is not None:
                data, size = cast(tuple[bytes, int], read(run_name, offset, limit))
            else:
                whole = self.backend.logs(run_name, None).encode()
                data, size = whole[offset : offset + limit], len(whole)
        except BackendError as e:
            if done or run.backend_ref in (None, ORCHESTRATED):
                return LogSlice(b"", 0, done)  # no log was ever kept (a DAG, a run never started)
            raise LookupError(str(e)) from e
        return LogSlice(data, size, done)

    def log_chunks(self, run_name: str) -> Iterable[bytes]:
        """The run's whole log in blocks (a backend that cannot stream gives it as one)."""
        if self.store.run(run_name) is None:
            raise LookupError(f"no run named {run_name}")
        chunks = getattr(self.backend, "log_chunks", None)
        try:
            if chunks is not None:
                return cast(Iterable[bytes], chunks(run_name))
            return [self.backend.logs(run_name, None).encode()]
        except BackendError as e:
            raise LookupError(str(e)) from e

    # --- what runs report about themselves -----------------------------------------------------

    def report(self, run_name: str, points: Sequence[Point], outputs: Mapping[str, Any], now: datetime) -> int:
        """Record metric values and outputs a run reported (its outputs file, or the API), then
        let early stopping judge the run on them. LookupError for an unknown run, ValueError for
        a done one (it reports nothing more), ReportLimit when it reported too much."""
        run = self.store.run(run_name)
        if run is None:
            raise LookupError(f"no run named {run_name}")
        if is_done(run.status):
            raise ValueError(f"run {run_name} is {run.status}: it reports nothing more")
        count = self.store.record_report(run_name, points, outputs, now)
        if count and self.orchestration is not None:
            self.apply_work(self.orchestration.on_report(run_name, now), now)
        return count

    def outputs_of(self, run_name: str) -> Mapping[str, Any]:
        """What a run reported: its backend's record (a local run's outputs file) under what it
        reported as it ran (the same file read as it grew, or the API). Empty where unknown."""
        found: dict[str, Any] = {}
        read = getattr(self.backend, "outputs", None)
        if read is not None:
            try:
                kept = read(run_name)
            except Exception:
                kept = None
            if isinstance(kept, Mapping):
                found.update(kept)
        with contextlib.suppress(NotFound):
            found.update(self.store.reported_outputs(run_name))
        return found

    # --- the one way a status is recorded -----------------------------------------------------

    def transition(self, transition: StatusTransition) -> bool:
        """Record a status (with its commit status, in one transaction), then what it causes:
        subscribed runs, the parent's next step, hooks. False when nothing changed. A note (see
        `StatusTransition.note`) is a history row only: the status, the forge and the
        orchestration are left as they are."""
        if transition.note:
            return self._note(transition)
        target = Status(transition.status)
        try:
            with self.store.unit_of_work() as tx:
                change = self.store.transition(
                    transition.run,
                    target,
                    at=transition.at,
                    reason=transition.reason or None,
                    message=transition.message or None,
                    session=tx,
                )
                if change is not None:
                    run = self.store.run(transition.run, session=tx)
                    assert run is not None
                    op = OpKey.parse(self.store.op_key_by_id(run.operation_id, session=tx))
                    self._report(run, op, target, transition.at, transition.reason, transition.message, tx)
        except NotFound:
            return False  # not a run we track (yet): adoption records it
        except IllegalTransition as e:
            log.debug("run %s: %s", transition.run, e)
            return False
        if change is None:
            return False
        self._wake()
        if self.metrics is not None:
            self.metrics.runs_transitions.labels(status=str(target)).inc()
        if self.orchestration is not None:
            self.apply_work(self.orchestration.on_transition(transition, transition.at), transition.at)
        return True

    def _note(self, transition: StatusTransition) -> bool:
        try:
            self.store.note(
                transition.run, at=transition.at, reason=transition.reason, message=transition.message or None
            )
        except NotFound:
            return False
        if transition.reason == DRIFT_CORRECTED and self.metrics is not None:
            run = self.store.run(transition.run)
            self.metrics.drift_corrected.labels(kind=(run.kind if run is not None else None) or "unknown").inc()
        return True

    def _fail(self, run: str, status: Status, reason: str, message: str, now: datetime) -> None:
        if not self.transition(StatusTransition(run, status, now, reason, message)):
            log.warning("run %s: cannot record %s (%s: %s)", run, status, reason, message)

    def _report(
        self,
        run: Run,
        op: OpKey,
        status: Status,
        now: datetime,
        reason: str | None,
        message: str | None,
        session: Tx,
    ) -> None:
        if self.reporter is not None:
            self.reporter.run_status(
                run, op, status, now, reason=reason or None, message=message or None, session=session
            )

    def _wake(self) -> None:
        if self.reporter is not None:
            self.reporter.wake()

    # --- what the orchestrator asks for -------------------------------------------------------

    def apply_work(self, work: Work | None, now: datetime) -> None:
        """New runs (children, ticks, events), derived statuses, stops; notices are logged."""
        if work is None:
            return
        for notice in work.notices:
            log.warning("%s: %s", notice.reason, notice.message, extra={"subject": notice.subject})
        for update in work.updates:
            self.transition(StatusTransition(update.run, update.status, now, update.reason, update.message))
        for new in work.new_runs:
            try:
                self.create(new.request, now, parent=new.parent, status=Status(new.status))
            except NotOwner as e:  # its owner's resume() starts it
                log.info("%s: not started here: %s", new.request.name, e)
        for name in work.stops:
            self.stop(name)

    # --- plans ------------------------------------------------------------------------------------

    def apply(self, actions: Iterable[Action], desired: DesiredState, now: datetime) -> ApplyResult:
        result = ApplyResult()
        actions = list(actions)
        self.check_fence(desired.repo)
        if self.orchestration is not None:
            self.apply_work(self.orchestration.sync(actions, desired, now), now)
        for action in actions:
            if not action.changes_something:
                continue
            try:
                self._apply_one(action, desired, now)
            except (TransientBackendError, NotOwner):
                raise  # the whole reconcile is retried with backoff (or left to the repo's owner)
            except RunNotStarted as e:
                log.warning("applying %s %s failed: %s", action.action.value, action.op, e)
                result.failures.append((f"{action.action.value} {action.op}", str(e)))
                continue
            except Exception as e:  # one operation's failure never stops the others
                log.exception("applying %s %s failed", action.action.value, action.op)
                result.failures.append((f"{action.action.value} {action.op}", f"{type(e).__name__}: {e}"))
                continue
            result.counts[action.action.value] += 1
        return result

    def _apply_one(self, action: Action, desired: DesiredState, now: datetime) -> None:
        self.check_fence(action.op.repo)
        kind = action.action
        if kind is ActionKind.CREATE and action.run is not None:
            problem = self.create(action.run, now)
            if problem is not None:
                raise RunNotStarted(f"{action.run.name} {problem}")
        elif kind is ActionKind.RETRY and action.run is not None:
            self.store.update_run_spec(action.run.name, action.run.spec_hash, action.run.effective, now)
            self.transition(StatusTransition(action.run.name, Status.RETRYING, now, "Retry", action.reason))
            problem = self.start(action.run, now)
            if problem is not None:
                raise RunNotStarted(f"{action.run.name} {problem}")
        elif kind is ActionKind.UPDATE and action.run is not None:
            self.backend.apply(action.run)
            self.store.update_run_spec(
                action.target or action.run.name, action.run.spec_hash, action.run.effective, now
            )
        elif kind is ActionKind.DRIFT:
            if action.run is not None:
                self.backend.apply(action.run)
                target = action.target or action.run.name
                self.transition(StatusTransition(target, "", now, DRIFT_CORRECTED, action.reason, note=True))
            elif action.target is not None and action.observed is None:
                self._fail(action.target, Status.UNKNOWN, "Drift", action.reason, now)
            # With an observed object and no run, the drift is reported only (self_heal off).
        elif kind is ActionKind.STOP and action.target is not None:
            self.backend.stop(action.target)
        elif kind in (ActionKind.DELETE, ActionKind.PRUNE) and action.target is not None:
            self.backend.delete(action.target)
            self._ended(action, now)
        elif kind is ActionKind.ADOPT and action.observed is not None:
            self._adopt(action, action.observed, desired, now)
        # Schedules and subscriptions were persisted by the orchestration's sync() above.

    def _ended(self, action: Action, now: datetime) -> None:
        """A deleted or pruned run that was not done is stopped for good: say so in its history."""
        assert action.target is not None
        run = self.store.run(action.target)
        if run is None or is_done(run.status):
            return
        reason = "Deleted" if action.action is ActionKind.DELETE else "Pruned"
        self.transition(StatusTransition(action.target, Status.STOPPED, now, reason, action.reason))

    def _adopt(self, action: Action, obj: ObservedObject, desired: DesiredState, now: datetime) -> None:
        op_key = obj.annotations.get(ANNOTATION_OP_KEY, str(action.op))
        op = desired.ops.get(action.op)
        commit = obj.annotations.get(ANNOTATION_COMMIT, "")
        spec = op.effective if op is not None and op.spec_hash.startswith(obj.spec_hash) else None
        request = RunRequest(
            name=obj.run,
            op=OpKey.parse(op_key),
            kind=obj.kind,
            spec_hash=obj.spec_hash,
            effective=dict(spec or {}),
            cause=Cause.COMMIT,
            cause_id=commit or obj.run,
            commit=commit,
        )
        with self.store.unit_of_work() as tx:
            self.store.upsert_operation(
                op_key, action.op.repo, (op.mode if op else Mode.ONE_SHOT).value, now, session=tx
            )
            run, _ = self.record(
                request,
                now,
                session=tx,
                reason="Adopted",
                message="found in the backend with our labels, missing from the database",
                spec_known=spec is not None,
            )
        self.store.set_backend_ref(run.name, obj.run, now)


__all__ = ["ORCHESTRATED", "Applier", "ApplyResult", "Fence", "Orchestration", "StatusReporter", "is_orchestrated"]
