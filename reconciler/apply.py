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

Runs come in batches (a commit's new operations, a minute's ticks): `create_many` records a batch
in one transaction (`record_many`, a few statements whatever its size), then hands its runs to the
backend `submit_concurrency` at a time (a backend whose submit waits on the network says how many
it takes at once), and writes their backend references a batch at a time. The order within a run
is the same as for one: recorded, then submitted, then its reference; each run's failure is its
own, and a transient one (the backend unreachable) stops what is not yet submitted and is raised
once the submitted ones are recorded, so the caller retries the rest with backoff.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
from reconciler.orchestration.specs import Recording, container_of
from reconciler.orchestration.tree import ORCHESTRATED
from reconciler.orchestration.work import NewRun, StatusUpdate
from reconciler.plan.actions import Action, ActionKind
from reconciler.runtokens import RunTokens
from reconciler.sharding import NotOwner
from reconciler.spec.runs import LONG_RUNNING_KINDS
from reconciler.statuses import Status, is_done
from reconciler.tracking import IllegalTransition, NewRunRow, NotFound, Point, Run, Store, TrackingError, Tx

log = logging.getLogger(__name__)

# Backend references written per transaction while a batch is being submitted: a crash loses at
# most this many (their runs are submitted again, which is idempotent by name).
REF_BATCH = 100
# How long a run withdrawn before any thread claimed it is remembered (a claim in flight when it
# was withdrawn comes within this time).
WITHDRAWN_KEPT = timedelta(minutes=5)
# The longest a run waiting for its time (`NewRun.not_before`) is waited for in one sleep.
MAX_WAIT_SECONDS = 60.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def is_orchestrated(run: RunRequest) -> bool:
    """A DAG or an op with a matrix: the orchestrator expands it, no backend runs it."""
    return container_of(run.effective) is not None


class Orchestration(Protocol):
    """What the applier needs from the orchestration adapter (schedules, events, DAGs, matrices)."""

    def sync(self, actions: Sequence[Action], desired: DesiredState, now: datetime) -> Work: ...

    def start(self, run: RunRequest, now: datetime) -> Work: ...

    def on_transitions(self, transitions: Sequence[StatusTransition], now: datetime) -> Work: ...

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


class _NotSubmitted(Exception):
    """A run of a batch left unsubmitted after another's transient failure (or a lost lease)."""


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
        submit_concurrency: int = 1,
    ) -> None:
        """`submit_concurrency`: how many runs a batch hands to the backend at once."""
        self.store = store
        self.submit_concurrency = max(1, submit_concurrency)
        self.clock = clock
        # Set when the daemon stops: a wait for a run's time (`NewRun.not_before`) ends at once.
        self.stopping = threading.Event()
        # How the applier waits for a run's time: True when the wait was cut short. A test's
        # moves its clock.
        self.sleep: Callable[[float], bool | None] = self.stopping.wait
        # The runs a thread of this process is starting (or holding until their time).
        self._starting: set[str] = set()
        # Among those, the ones held until their time (`NewRun.not_before`) and not handed to the
        # backend yet: what a withdrawal (`Work.withdrawals`) may still take back.
        self._held: set[str] = set()
        # Runs taken back before any thread of this process claimed them, with when: a claim
        # that comes after (a pass's batch in flight, a resume's stale read) drops them.
        self._withdrawn: dict[str, datetime] = {}
        self._starting_lock = threading.Lock()
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
        on first use; a top-level run's operation must be tracked already. One run of
        `record_many`; raises what it returns for the run.
        """
        item = Recording(
            request, parent, status, final, node, trial_index, meta, child_mode, reason, message, spec_known
        )
        [result] = self.record_many([item], now, session=session)
        if isinstance(result, TrackingError):
            raise result
        return result

    def record_many(
        self, items: Sequence[Recording], now: datetime, *, session: Tx
    ) -> list[tuple[Run, bool] | TrackingError]:
        """Record each run once, in `session` (see `record`): the runs in a few statements for the
        whole batch (`Store.create_runs`), with each new run's first status in the outbox. For
        each, in order: (the run, whether it is new), or why it could not be recorded (an
        operation not tracked, a name taken by another run), which leaves the others recorded."""
        for repo in dict.fromkeys(item.request.op.repo for item in items):
            self.check_fence(repo, session)  # in the transaction: no takeover until it ends
        for item in items:
            if item.child_mode is not None:
                self.store.upsert_operation(
                    str(item.request.op),
                    item.request.op.repo,
                    item.child_mode,
                    now,
                    spec_hash=item.request.spec_hash,
                    commit_sha=item.request.commit or None,
                    session=session,
                )
        rows = [
            NewRunRow(
                op_key=str(item.request.op),
                cause=item.request.cause,
                cause_id=item.request.cause_id,
                name=item.request.name,
                spec_hash=item.request.spec_hash,
                backend=self.backend.name,
                commit_sha=item.request.commit or None,
                status=item.status,
                reason=item.reason,
                message=item.message,
                kind=item.request.kind,
                spec=item.request.effective if item.spec_known else None,
                parent=item.parent,
                namespace=item.request.namespace,
                params=item.request.params,
                node=item.node,
                trial_index=item.trial_index,
                meta=item.meta,
            )
            for item in items
        ]
        results: list[tuple[Run, bool] | TrackingError] = []
        for item, created in zip(items, self.store.create_runs(rows, now, session=session), strict=True):
            if isinstance(created, TrackingError):
                results.append(created)
                continue
            if created.created:
                op = item.request.op
                self._report(created.run, op, item.status, now, item.reason, item.message, session)
                if item.final is not None:
                    to, why, text = item.final
                    if self.store.transition(created.run, to, at=now, reason=why, message=text, session=session):
                        self._report(created.run, op, to, now, why, text, session)
            results.append((created.run, created.created))
        return results

    def create(
        self, request: RunRequest, now: datetime, *, parent: str | None = None, status: Status = Status.CREATED
    ) -> str | None:
        """Record then start a run (nothing done twice); returns why it could not be started, if so.

        A run recorded earlier but never started (a crash between the two steps, or a run the
        orchestrator recorded in its own transaction) is started now. One run of `create_many`.
        """
        [outcome] = self.create_many([NewRun(request, str(status), parent)], now)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def create_many(self, runs: Sequence[NewRun], now: datetime) -> list[str | Exception | None]:
        """Record then start runs: recorded in one transaction (unless `fresh`), then started
        `submit_concurrency` at a time (`start_many`). For each, in order: None (started, or
        nothing to do), why the backend refused it for good (recorded on the run), or the
        exception that kept it from being recorded or started. A transient failure or a lost
        lease is raised once every run already handed to the backend is recorded; the others stay
        recorded for a retry."""
        # A run recorded new by the transaction that handed it over (`NewRun.fresh`) is started
        # as it is; the others are recorded (or found) first.
        reading = [i for i, new in enumerate(runs) if not new.fresh]
        outcomes: list[str | Exception | None] = [None] * len(runs)
        starting: list[int] = [i for i, new in enumerate(runs) if new.fresh]
        if reading:
            items = [Recording(runs[i].request, parent=runs[i].parent, status=Status(runs[i].status)) for i in reading]
            with self.store.unit_of_work() as tx:
                recorded = self.record_many(items, now, session=tx)
            for i, result in zip(reading, recorded, strict=True):
                if isinstance(result, Exception):
                    outcomes[i] = result
                    continue
                run, new = result
                if new or (run.backend_ref is None and run.status in (Status.CREATED, Status.ON_SCHEDULE)):
                    starting.append(i)
            starting.sort()
        self._wake()
        started = self.start_many([runs[i].request for i in starting], now)
        for i, outcome in zip(starting, started, strict=True):
            outcomes[i] = outcome
        return outcomes

    def start(self, run: RunRequest, now: datetime) -> str | None:
        """Hand a recorded run to its backend (or expand it); returns why it could not start.

        A backend's permanent refusal (a missing operator, an invalid object) is recorded on the
        run as its final status and returned; a transient one propagates to be retried. One run
        of `start_many`."""
        [outcome] = self.start_many([run], now)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def start_many(self, runs: Sequence[RunRequest], now: datetime) -> list[str | Exception | None]:
        """Hand recorded runs to their backend, `submit_concurrency` at a time (DAGs and matrices
        are expanded here instead); the fence is checked before each submit. Backend references
        are written `REF_BATCH` at a time as submits complete. For each run, in order: None
        (started), why the backend refused it for good (recorded on the run as its final
        status), or an unexpected exception. A transient failure or a lost lease stops the
        submits not yet begun and is raised after the others are recorded."""
        outcomes: list[str | Exception | None] = [None] * len(runs)
        submitting: list[int] = []
        for i, run in enumerate(runs):
            if not is_orchestrated(run):
                submitting.append(i)
                continue
            try:
                outcomes[i] = self._expand(run, now)
            except (TransientBackendError, NotOwner):
                raise  # retried (or left to the repo's owner); the others stay recorded for resume()
            except Exception as e:  # one DAG's failure never stops the others
                outcomes[i] = e
        requests = [self._with_project(runs[i]) for i in submitting]
        stop: BaseException | None = None
        refs: dict[str, str] = {}
        failed: list[tuple[RunRequest, PermanentBackendError]] = []
        for j, result in self._submit_all(requests):
            i, run = submitting[j], requests[j]
            if isinstance(result, str):
                refs[run.name] = result
                if len(refs) >= REF_BATCH:
                    self.store.set_backend_refs(refs, now)
                    refs = {}
            elif isinstance(result, PermanentBackendError):
                failed.append((run, result))
                outcomes[i] = f"{result.status or 'failed'}: {result}"
            elif isinstance(result, (TransientBackendError, NotOwner)):
                stop = stop or result
            elif isinstance(result, Exception) and not isinstance(result, _NotSubmitted):
                outcomes[i] = result
        self.store.set_backend_refs(refs, now)
        for run, error in failed:
            self._fail(run.name, Status(error.status or "failed"), type(error).__name__, str(error), now)
        if stop is not None:
            raise stop
        return outcomes

    def _expand(self, run: RunRequest, now: datetime) -> str | None:
        """Start a DAG or matrix: the orchestrator records its first children."""
        self.check_fence(run.op.repo)
        if self.orchestration is None:
            why = "DAGs and matrices need the daemon"
            self._fail(run.name, Status.UNSCHEDULABLE, "NoOrchestrator", why, now)
            return why
        work = self.orchestration.start(run, now)
        self.store.set_backend_ref(run.name, ORCHESTRATED, now)
        self.apply_work(work, now)
        return None

    def _with_project(self, run: RunRequest) -> RunRequest:
        if not run.project and self.project_of is not None:
            return dataclasses.replace(run, project=self.project_of(run.op.repo))
        return run

    def _submit_one(self, run: RunRequest) -> str:
        self.check_fence(run.op.repo)  # before every write that starts something
        return self.backend.submit(run)

    def _submit_all(self, runs: Sequence[RunRequest]) -> Iterator[tuple[int, str | BaseException]]:
        """(index, backend reference or the exception) for each run as its submit completes, at
        most `submit_concurrency` at once. After a transient failure or a lost lease, the runs
        not yet submitted come back as `_NotSubmitted`."""
        if len(runs) <= 1 or self.submit_concurrency == 1:
            stopped = False
            for j, run in enumerate(runs):
                if stopped:
                    yield j, _NotSubmitted(run.name)
                    continue
                try:
                    yield j, self._submit_one(run)
                except Exception as e:
                    stopped = isinstance(e, (TransientBackendError, NotOwner))
                    yield j, e
            return
        workers = min(self.submit_concurrency, len(runs))
        # Every run is queued at once and the workers take them as they free up, whatever the
        # caller does with the results meanwhile (writing references waits on the database):
        # the submits never wait for it. A failure that stops the batch turns the runs not yet
        # begun into `_NotSubmitted`.
        halt = threading.Event()

        def submit(run: RunRequest) -> str:
            if halt.is_set():
                raise _NotSubmitted(run.name)
            try:
                return self._submit_one(run)
            except (TransientBackendError, NotOwner):
                halt.set()
                raise

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="submit") as pool:
            futures = {pool.submit(submit, run): j for j, run in enumerate(runs)}
            try:
                for future in as_completed(futures):
                    error = future.exception()
                    yield futures[future], (future.result() if error is None else error)
            finally:
                halt.set()  # the caller gave up (an error recording references): start no more

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
        [changed] = self._record_statuses([transition])
        if changed:
            self._follow([transition])
        return changed

    def transitions(self, transitions: Sequence[StatusTransition]) -> list[bool]:
        """`transition` for many, in order: their statuses (with their commit statuses) recorded
        in one transaction, then what they cause. A backend's burst of first statuses (a
        minute's thousand new Jobs) costs a transaction per batch rather than per run. A batch
        with a note, or one whose transaction fails, is recorded one transition at a time."""
        if len(transitions) <= 1 or any(t.note for t in transitions):
            return [self.transition(t) for t in transitions]
        try:
            changed = self._record_statuses(transitions)
        except Exception:
            log.warning("recording %d statuses together failed; one at a time", len(transitions), exc_info=True)
            return [self.transition(t) for t in transitions]
        recorded = [t for t, done in zip(transitions, changed, strict=True) if done]
        if recorded:
            self._follow(recorded)
        return changed

    def _record_statuses(self, transitions: Sequence[StatusTransition]) -> list[bool]:
        """Each status with its commit status, in one transaction; whether each changed the run
        (a run not tracked, or a change the lifecycle forbids, changes nothing)."""
        changed = [False] * len(transitions)
        with self.store.unit_of_work() as tx:
            ops: dict[int, OpKey] = {}
            for i, t in enumerate(transitions):
                target = Status(t.status)
                try:
                    change = self.store.transition(
                        t.run, target, at=t.at, reason=t.reason or None, message=t.message or None, session=tx
                    )
                except NotFound:
                    continue  # not a run we track (yet): adoption records it
                except IllegalTransition as e:
                    log.debug("run %s: %s", t.run, e)
                    continue
                if change is None:
                    continue
                changed[i] = True
                if self.reporter is not None:
                    run = self.store.run(t.run, session=tx)
                    assert run is not None
                    if run.operation_id not in ops:
                        ops[run.operation_id] = OpKey.parse(self.store.op_key_by_id(run.operation_id, session=tx))
                    self._report(run, ops[run.operation_id], target, t.at, t.reason, t.message, tx)
        return changed

    def _follow(self, recorded: Sequence[StatusTransition]) -> None:
        """What recorded transitions cause: the forge woken, subscribed runs, the parents' next
        steps, hooks."""
        self._wake()
        if self.metrics is not None:
            for t in recorded:
                self.metrics.runs_transitions.labels(status=str(t.status)).inc()
        if self.orchestration is not None:
            now = max(t.at for t in recorded)
            self.apply_work(self.orchestration.on_transitions(recorded, now), now)

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
        """New runs (children, ticks, events), derived statuses, stops; notices are logged. A run
        another thread of this process is starting already (a pass holding it until its tick,
        when a resume finds it unsubmitted) is left to that thread."""
        if work is None:
            return
        runs = self._claim(work.new_runs)
        try:
            self._apply_work(dataclasses.replace(work, new_runs=runs), now)
        finally:
            self._release(runs)

    def _apply_work(self, work: Work, now: datetime) -> None:
        for notice in work.notices:
            log.warning("%s: %s", notice.reason, notice.message, extra={"subject": notice.subject})
        self._withdraw(work.withdrawals, now)
        for update in work.updates:
            self.transition(StatusTransition(update.run, update.status, now, update.reason, update.message))
        # Runs due now first; a tick's run decided ahead of its time waits for it (`not_before`).
        current = self.clock()
        later = sorted((n for n in work.new_runs if _later(n, current)), key=_not_before)
        self._create_by_repo(self._release_held([n for n in work.new_runs if not _later(n, current)]), now)
        for when, group in itertools.groupby(later, key=_not_before):
            if not self._wait_until(when):
                # Recorded, not created: `resume` creates them at their time, never before.
                log.info("runs due at %s left to the next resume", when.isoformat())
                break
            self._create_by_repo(self._release_held(list(group)), max(now, when))
        for name in work.stops:
            self.stop(name)

    def apply_batches(self, batches: Iterable[Work], now: datetime) -> None:
        """`apply_work` for a pass that hands its work over a batch at a time (`Orchestrator.due`):
        what is due is applied as each batch comes, and runs waiting for their time
        (`not_before`) are held while the next batches are decided, then created together when
        due (one stream of submits rather than a batch at a time)."""
        held: list[NewRun] = []
        claimed: list[NewRun] = []
        try:
            for work in batches:
                runs = self._claim(work.new_runs)
                claimed += runs
                current = self.clock()
                ready = [n for n in held if not _later(n, current)]
                held = [n for n in held if _later(n, current)] + [n for n in runs if _later(n, current)]
                due = tuple(ready) + tuple(n for n in runs if not _later(n, current))
                self._apply_work(dataclasses.replace(work, new_runs=due), now)
            if held:
                self._apply_work(Work(new_runs=tuple(held)), now)
        finally:
            self._release(claimed)

    def _claim(self, runs: Iterable[NewRun]) -> tuple[NewRun, ...]:
        """The runs no other thread of this process is starting (nor withdrawn), now marked as
        this one's; those waiting for their time are held (a withdrawal may take them back)."""
        with self._starting_lock:
            mine = tuple(
                n for n in runs if n.request.name not in self._starting and n.request.name not in self._withdrawn
            )
            self._starting.update(n.request.name for n in mine)
            self._held.update(n.request.name for n in mine if n.not_before is not None)
        return mine

    def _release(self, runs: Iterable[NewRun]) -> None:
        with self._starting_lock:
            names = [n.request.name for n in runs]
            self._starting.difference_update(names)
            self._held.difference_update(names)

    def _release_held(self, runs: Sequence[NewRun]) -> list[NewRun]:
        """The runs to hand to the backend now: held ones still held (not withdrawn meanwhile),
        no longer withdrawable from here on."""
        with self._starting_lock:
            out = [n for n in runs if n.not_before is None or n.request.name in self._held]
            self._held.difference_update(n.request.name for n in out)
        return out

    def _withdraw(self, withdrawals: Sequence[StatusUpdate], now: datetime) -> None:
        """Take back runs recorded for a tick to come whose schedule changed since: skipped with
        their reason, their tick too. One a thread is handing to the backend already (its tick
        came) is left to run: the change came after its tick."""
        if not withdrawals:
            return
        taken: list[StatusUpdate] = []
        with self._starting_lock:
            for name, at in list(self._withdrawn.items()):
                if at < now - WITHDRAWN_KEPT:
                    del self._withdrawn[name]
            for update in withdrawals:
                if update.run in self._held:
                    self._held.discard(update.run)
                elif update.run in self._starting:
                    log.info("run %s was due and is starting: %s (it stays)", update.run, update.message)
                    continue
                else:
                    self._withdrawn[update.run] = now
                taken.append(update)
        skipped: dict[str, tuple[str, str]] = {}
        for update in taken:
            try:
                self.transition(StatusTransition(update.run, Status(update.status), now, update.reason, update.message))
            except IllegalTransition as e:  # it moved on meanwhile (another replica, a stop)
                log.info("run %s not taken back: %s", update.run, e)
                continue
            skipped[update.run] = (update.reason, update.message)
        self.store.skip_ticks_of(skipped)
        if skipped:
            log.info("took back %d run(s) of ticks to come whose schedule changed", len(skipped))

    def _create_by_repo(self, runs: Sequence[NewRun], now: datetime) -> None:
        by_repo: dict[str, list[NewRun]] = {}
        for new in runs:
            by_repo.setdefault(new.request.op.repo, []).append(new)
        for repo, group in by_repo.items():
            try:
                outcomes = self.create_many(group, now)
            except NotOwner as e:  # its owner's resume() starts them
                log.info("%d run(s) of %s not started here: %s", len(group), repo, e)
                continue
            for outcome in outcomes:
                if isinstance(outcome, Exception):
                    raise outcome  # the item is retried; what was recorded is found again

    def _wait_until(self, when: datetime) -> bool:
        """Wait until the clock says `when` (a few seconds at most: a tick's lead): True then.
        False when the daemon is stopping, or the clock is still short of `when` after a few
        waits (a clock stepped back, a test's that does not move)."""
        for _ in range(3):
            if when <= self.clock():
                return True
            if self.sleep(min((when - self.clock()).total_seconds(), MAX_WAIT_SECONDS)) or self.stopping.is_set():
                return False
        return when <= self.clock()

    # --- plans ------------------------------------------------------------------------------------

    def apply(self, actions: Iterable[Action], desired: DesiredState, now: datetime) -> ApplyResult:
        result = ApplyResult()
        actions = list(actions)
        self.check_fence(desired.repo)
        if self.orchestration is not None:
            self.apply_work(self.orchestration.sync(actions, desired, now), now)
        for group in _batches(a for a in actions if a.changes_something):
            if len(group) > 1:
                self._apply_creates(group, now, result)
                continue
            [action] = group
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

    def _apply_creates(self, actions: Sequence[Action], now: datetime, result: ApplyResult) -> None:
        """A run of consecutive CREATE actions, as one batch (`create_many`)."""
        runs = [action.run for action in actions if action.run is not None]
        for repo in dict.fromkeys(run.op.repo for run in runs):
            self.check_fence(repo)
        outcomes = self.create_many([NewRun(run) for run in runs], now)  # transient: the reconcile is retried
        for action, run, outcome in zip(actions, runs, outcomes, strict=True):
            what = f"{action.action.value} {action.op}"
            if outcome is None:
                result.counts[action.action.value] += 1
            elif isinstance(outcome, str):
                log.warning("applying %s failed: %s %s", what, run.name, outcome)
                result.failures.append((what, f"{run.name} {outcome}"))
            else:
                log.error("applying %s failed", what, exc_info=outcome)
                result.failures.append((what, f"{type(outcome).__name__}: {outcome}"))

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


def _later(new: NewRun, now: datetime) -> bool:
    return new.not_before is not None and new.not_before > now


def _not_before(new: NewRun) -> datetime:
    assert new.not_before is not None
    return new.not_before


def _batches(actions: Iterable[Action]) -> Iterator[list[Action]]:
    """The actions in order, consecutive CREATEs of the same rank (long-running kinds come first,
    services before what uses them) in one batch, every other action alone."""

    def batchable(action: Action) -> tuple[bool, bool] | None:
        if action.action is not ActionKind.CREATE or action.run is None:
            return None
        return True, action.kind in LONG_RUNNING_KINDS

    group: list[Action] = []
    for action in actions:
        key = batchable(action)
        if group and (key is None or key != batchable(group[0])):
            yield group
            group = []
        group.append(action)
        if key is None:
            yield group
            group = []
    if group:
        yield group


__all__ = ["ORCHESTRATED", "Applier", "ApplyResult", "Fence", "Orchestration", "StatusReporter", "is_orchestrated"]
