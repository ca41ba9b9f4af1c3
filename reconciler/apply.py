"""Apply a plan: the one place where planned actions meet the backend and the tracking DB.

Order within a run's creation is what makes crashes harmless: the run is recorded first
(idempotent on (operation, cause)), then submitted (idempotent on the run name: an existing
object with our labels is adopted). A crash between the two leaves a `created` run without a
backend reference, which `resubmit_pending()` submits again on the next reconcile: never two runs,
never a lost one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from reconciler.backends import Backend, PermanentBackendError, TransientBackendError
from reconciler.model import ANNOTATION_COMMIT, ANNOTATION_OP_KEY, Cause, DesiredState, Mode, ObservedObject, RunRequest
from reconciler.orchestration.specs import CAUSE_KIND, container_of
from reconciler.plan.actions import Action, ActionKind
from reconciler.statuses import Status
from reconciler.tracking import CauseKind, IllegalTransition, NotFound, Store

log = logging.getLogger(__name__)


def cause_kind(cause: Cause) -> CauseKind:
    return CAUSE_KIND[cause]


def is_orchestrated(run: RunRequest) -> bool:
    """A DAG or an op with a matrix: the orchestrator expands it, no backend runs it."""
    return container_of(run.effective) is not None


class Orchestration(Protocol):
    """What the applier needs from the orchestration adapter (schedules, events, DAGs, matrices)."""

    def sync(self, actions: Sequence[Action], desired: DesiredState, now: datetime) -> Any: ...

    def start(self, run: RunRequest, now: datetime) -> Any: ...


class StatusReporter(Protocol):
    """Commit statuses for the forge, written to the outbox (see `reconciler.forge`)."""

    def run_status(self, run: RunRequest | None, run_name: str, status: Status, now: datetime) -> None: ...


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
        orchestration: Orchestration | None = None,
        reporter: StatusReporter | None = None,
        apply_work: Callable[[Any, datetime], None] | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.orchestration = orchestration
        self.reporter = reporter
        # How to apply what the orchestrator returns (children of DAGs and matrices); the daemon
        # supplies it, since it also applies work from ticks and transitions.
        self.apply_work = apply_work

    # --- runs -------------------------------------------------------------------------------------

    def create(
        self, run: RunRequest, now: datetime, *, parent: str | None = None, status: Status = Status.CREATED
    ) -> bool:
        """Record then start a run; False when it already existed (nothing done twice)."""
        created = self.store.create_run(
            op_key=str(run.op),
            cause_kind=cause_kind(run.cause),
            cause_id=run.cause_id,
            name=run.name,
            spec_hash=run.spec_hash,
            backend=self.backend.name,
            now=now,
            commit_sha=run.commit or None,
            status=status,
            kind=run.kind,
            spec=run.effective,
            parent=parent,
        )
        if not created.created:
            if created.run.backend_ref is None and created.run.status in (Status.CREATED, Status.ON_SCHEDULE):
                # Recorded but never started: a crash between the two, or the orchestrator
                # recorded it (ticks, events, DAG ops, trials) for us to start.
                self.start(run, now)
            return False
        if self.reporter is not None:
            self.reporter.run_status(run, run.name, status, now)
        self.start(run, now)
        return True

    def start(self, run: RunRequest, now: datetime) -> None:
        if is_orchestrated(run):
            if self.orchestration is None:
                self._final(run.name, Status.UNSCHEDULABLE, "NoOrchestrator", "DAGs and matrices need the daemon", now)
                return
            work = self.orchestration.start(run, now)
            self.store.set_backend_ref(run.name, "orchestrated", now)
            if self.apply_work is not None:
                self.apply_work(work, now)
            return
        try:
            ref = self.backend.submit(run)
        except PermanentBackendError as e:
            self._final(run.name, Status(e.status or "failed"), type(e).__name__, str(e), now)
            return
        self.store.set_backend_ref(run.name, ref, now)

    def _final(self, run: str, status: Status, reason: str, message: str, now: datetime) -> None:
        try:
            self.store.transition(run, status, at=now, reason=reason, message=message)
        except (IllegalTransition, NotFound) as e:
            log.warning("run %s: cannot record %s: %s", run, status, e)
        if self.reporter is not None:
            self.reporter.run_status(None, run, status, now)

    def resubmit_pending(self, repo: str, now: datetime, rebuild: Callable[[Any, str], RunRequest | None]) -> int:
        """Submit runs recorded but never started (a crash or an outage between the two steps)."""
        count = 0
        for run, op_key in self.store.list_runs(repo=repo, status=Status.CREATED.value, top_level=True):
            if run.backend_ref is not None or run.spec is None:
                continue
            request = rebuild(run, op_key)
            if request is None:
                continue
            log.info("run %s was recorded but not started; starting it", run.name)
            self.start(request, now)
            count += 1
        return count

    # --- plans ------------------------------------------------------------------------------------

    def apply(self, actions: Iterable[Action], desired: DesiredState, now: datetime) -> ApplyResult:
        result = ApplyResult()
        actions = list(actions)
        if self.orchestration is not None:
            work = self.orchestration.sync(actions, desired, now)
            if self.apply_work is not None:
                self.apply_work(work, now)
        for action in actions:
            if not action.changes_something:
                continue
            try:
                self._apply_one(action, desired, now)
            except TransientBackendError:
                raise  # the whole reconcile is retried with backoff; what was done stays done
            except Exception as e:  # one operation's failure never stops the others
                log.exception("applying %s %s failed", action.action.value, action.op)
                result.failures.append((f"{action.action.value} {action.op}", f"{type(e).__name__}: {e}"))
                continue
            result.counts[action.action.value] += 1
        return result

    def _apply_one(self, action: Action, desired: DesiredState, now: datetime) -> None:
        kind = action.action
        if kind is ActionKind.CREATE and action.run is not None:
            self.create(action.run, now)
        elif kind is ActionKind.UPDATE and action.run is not None:
            self.backend.apply(action.run)
            self.store.update_run_spec(
                action.target or action.run.name, action.run.spec_hash, action.run.effective, now
            )
        elif kind is ActionKind.DRIFT:
            if action.run is not None:
                self.backend.apply(action.run)
            elif action.target is not None:
                self._final(action.target, Status.UNKNOWN, "Drift", action.reason, now)
        elif kind is ActionKind.STOP and action.target is not None:
            self.backend.stop(action.target)
        elif kind in (ActionKind.DELETE, ActionKind.PRUNE) and action.target is not None:
            self.backend.delete(action.target)
        elif kind is ActionKind.ADOPT and action.observed is not None:
            self._adopt(action, action.observed, desired, now)
        # Schedules and subscriptions were persisted by the orchestration's sync() above.

    def _adopt(self, action: Action, obj: ObservedObject, desired: DesiredState, now: datetime) -> None:
        op_key = obj.annotations.get(ANNOTATION_OP_KEY, str(action.op))
        op = desired.ops.get(action.op)
        self.store.upsert_operation(op_key, action.op.repo, (op.mode if op else Mode.ONE_SHOT).value, now)
        commit = obj.annotations.get(ANNOTATION_COMMIT, "")
        created = self.store.create_run(
            op_key=op_key,
            cause_kind=CauseKind.COMMIT,
            cause_id=commit or obj.run,
            name=obj.run,
            spec_hash=obj.spec_hash,
            backend=self.backend.name,
            now=now,
            commit_sha=commit or None,
            kind=obj.kind,
            spec=op.effective if op is not None and op.spec_hash.startswith(obj.spec_hash) else None,
            reason="Adopted",
            message="found in the backend with our labels, missing from the database",
        )
        self.store.set_backend_ref(created.run.name, obj.run, now)
