"""Desired x observed x tracked -> the ordered actions that converge them (design.md §4, §5).

A pure function: the clock comes in as `now`, and the same inputs give the same plan, whatever
the order of the observed and tracked lists.

Inputs the caller must respect:
- `observed` is listed *after* `tracked` was read, so a run recorded in the DB is either in the
  listing or really gone. `None` means "not observed" (no cluster access, as in `reconciler plan`
  without a backend): then nothing is adopted, pruned or reported as drift.
- `tracked` holds this repo's rows; rows of other repos are ignored, as are observed objects
  whose op-key annotation names another repo or is missing (ownership, safety rule 2).

Safety rules enforced here:
1. Operations of invalid files (by path, or kept in `desired.kept`) are never stopped, deleted or
   pruned, and their schedules and subscriptions stay; the file gets an `invalid` action.
2. `stop`, `delete` and `prune` need the kind's prune policy and a fully valid desired state;
   otherwise the plan says what is left running and why (a `noop`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.backoff import Backoff
from reconciler.model import (
    ANNOTATION_OP_KEY,
    Cause,
    DesiredOp,
    DesiredState,
    Mode,
    ObservedObject,
    OpKey,
    RunRequest,
    run_name,
)
from reconciler.plan.actions import Action, ActionKind
from reconciler.plan.diff import field_diff
from reconciler.plan.state import TrackedRun, TrackedState
from reconciler.plan.ticks import next_ticks
from reconciler.spec.runs import LONG_RUNNING_KINDS


@dataclass(frozen=True)
class PlanOptions:
    namespace: str = "default"
    # Run kind -> whether removed operations' runs may be stopped/deleted/pruned. Kinds not listed
    # follow design.md §4: on for long-running kinds, off for the others.
    prune: Mapping[str, bool] = field(default_factory=dict)
    tz: str = "UTC"  # for cron previews
    ticks: int = 3  # fire times shown per registered or changed schedule
    # Re-apply long-running objects edited or deleted in the cluster; off: drift is reported only.
    self_heal: bool = True

    def prune_allowed(self, kind: str) -> bool:
        return self.prune.get(kind, kind in LONG_RUNNING_KINDS)


# A long-running run that failed, or could not be scheduled (a missing operator, a name taken by a
# foreign object), is tried again until it runs: 10 s after the first failure, doubling to 10 min.
# Each attempt is a run of its own (cause `retry`), so the history shows every one. `stopped` is
# someone's decision and is never retried; `unknown` is drift (self_heal's business).
RETRYABLE = frozenset({"failed", "unschedulable"})
# ...unless the backend said it can never run the run as it is.
NOT_RETRIED = frozenset({"UnsupportedKind", "NoOrchestrator"})
RETRY_BACKOFF = Backoff(initial=10.0, cap=600.0)


def retry_of(run: TrackedRun) -> tuple[str, int]:
    """(the run the retries follow, how many retries were made) for a run that may be a retry."""
    if run.cause == Cause.RETRY.value:
        parts = run.cause_id.split(":")
        if len(parts) == 3 and parts[0] == "retry" and parts[1] and parts[2].isdigit():
            return parts[1], int(parts[2])
    return run.name, 0


def same_hash(a: str, b: str) -> bool:
    """Spec hashes compare equal when one is the other cut short (a label keeps 63 of 64 hex)."""
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    return len(short) >= 32 and long.startswith(short)


def observed_op(obj: ObservedObject) -> OpKey | None:
    text = obj.annotations.get(ANNOTATION_OP_KEY)
    if not text:
        return None
    try:
        return OpKey.parse(text)
    except ValueError:
        return None


def adopted_run(obj: ObservedObject, op: OpKey, now: datetime) -> TrackedRun:
    """The DB row adopting `obj` creates; the planner reasons on it as if already recorded."""
    return TrackedRun(
        name=obj.run,
        op=op,
        kind=obj.kind,
        spec_hash=obj.spec_hash,
        status=obj.status or "unknown",
        created_at=now,
        cause="adopted",
    )


_RANK = {
    ActionKind.INVALID: 0,
    ActionKind.ADOPT: 1,
    # long-running creates/updates/re-applies get rank 2 (services before what uses them)
    ActionKind.SUBSCRIBE: 3,  # subscribers listen before the runs they follow are created
    ActionKind.REGISTER_SCHEDULE: 3,
    ActionKind.UPDATE_SCHEDULE: 3,
    ActionKind.CREATE: 4,
    ActionKind.UPDATE: 4,
    ActionKind.RETRY: 4,
    ActionKind.DRIFT: 5,
    ActionKind.UNSUBSCRIBE: 6,  # nothing new is triggered while removing
    ActionKind.REMOVE_SCHEDULE: 6,
    ActionKind.STOP: 7,
    ActionKind.DELETE: 8,  # services after their users
    ActionKind.PRUNE: 9,
    ActionKind.NOOP: 10,
}


def _rank(action: Action) -> int:
    if action.run is not None and action.kind in LONG_RUNNING_KINDS:
        return 2
    return _RANK[action.action]


def _sort_key(action: Action) -> tuple[int, str, str, str]:
    return (_rank(action), str(action.op), action.action.value, action.target or "")


def _run_order(r: TrackedRun) -> tuple[datetime, str, str, str, str, str, str]:
    return (r.created_at, r.name, str(r.op), r.kind, r.spec_hash, r.status, r.cause)


class _Planner:
    def __init__(
        self,
        desired: DesiredState,
        observed: Sequence[ObservedObject] | None,
        tracked: TrackedState,
        now: datetime,
        options: PlanOptions,
    ) -> None:
        self.desired = desired
        self.now = now
        self.options = options
        self.tracked = tracked
        self.observing = observed is not None
        self.actions: list[Action] = []
        repo = desired.repo
        self.protected_paths = frozenset(desired.invalid)
        self.can_prune = desired.fully_valid

        self.observed: dict[str, ObservedObject] = {}
        self.observed_ops: dict[str, OpKey] = {}
        for obj in sorted(observed or (), key=lambda o: (o.run, o.kind, o.spec_hash, o.status or "")):
            op = observed_op(obj)
            if op is None or op.repo != repo or obj.run in self.observed:
                continue
            self.observed[obj.run] = obj
            self.observed_ops[obj.run] = op

        runs = sorted((r for r in tracked.runs if r.op.repo == repo), key=_run_order)
        tracked_names = {r.name for r in runs}
        # Untracked objects of operations Git still has (or keeps) are adopted; their rows are
        # planned on as if recorded, so adopting and converging happen in one plan.
        self.to_adopt: list[tuple[ObservedObject, OpKey]] = []
        self.orphans: list[tuple[ObservedObject, OpKey]] = []
        for run, obj in self.observed.items():
            if run in tracked_names:
                continue
            op = self.observed_ops[run]
            if op in desired.ops or self.protected(op):
                self.to_adopt.append((obj, op))
            else:
                self.orphans.append((obj, op))
        runs += [adopted_run(obj, op, now) for obj, op in self.to_adopt]
        self.runs = runs
        self.runs_by_op: dict[OpKey, list[TrackedRun]] = {}
        for r in runs:
            self.runs_by_op.setdefault(r.op, []).append(r)
        self.handled: set[str] = set()  # runs already given an action

    def protected(self, op: OpKey) -> bool:
        return op.path in self.protected_paths or op in self.desired.kept

    def add(self, action: ActionKind, op: OpKey, kind: str, reason: str, **payload: object) -> None:
        self.actions.append(Action(action, op, kind, reason, **payload))  # type: ignore[arg-type]

    def request(self, op: DesiredOp, name: str | None = None) -> RunRequest:
        commit = self.desired.commit
        return RunRequest(
            name=name or run_name(op.key, op.spec_hash, commit),
            op=op.key,
            kind=op.kind,
            spec_hash=op.spec_hash,
            effective=op.effective,
            cause=Cause.COMMIT,
            cause_id=commit,
            commit=commit,
            namespace=self.options.namespace,
        )

    # --- what Git has -------------------------------------------------------------------------

    def invalid_files(self) -> None:
        kept_by_path: dict[str, list[OpKey]] = {}
        for key in sorted(self.desired.kept):
            kept_by_path.setdefault(key.path, []).append(key)
        for path in sorted(self.desired.invalid):
            errors = self.desired.invalid[path].errors
            first = str(errors[0]) if errors else f"{path}: invalid"
            kept = kept_by_path.get(path, [])
            stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            op = kept[0] if kept else OpKey(self.desired.repo, path, stem)
            reason = first if not kept else f"{first} (keeping the last good state of {len(kept)} operation(s))"
            self.add(ActionKind.INVALID, op, "file", reason, errors=errors)

    def desired_ops(self) -> None:
        for key, op in self.desired.ops.items():
            if key in self.desired.kept:
                self.add(ActionKind.NOOP, key, op.kind, "file invalid at this commit; keeping the last good state")
                self.handled.update(r.name for r in self.runs_by_op.get(key, ()))
                continue
            if op.mode is Mode.ONE_SHOT:
                self.one_shot(op)
            elif op.mode is Mode.LONG_RUNNING:
                self.long_running(op)
            elif op.mode is Mode.SCHEDULED:
                self.scheduled(op)
            else:
                self.subscribed(op)
            if op.mode is not Mode.SCHEDULED and key in self.tracked.schedules:
                self.add(ActionKind.REMOVE_SCHEDULE, key, op.kind, f"no longer scheduled (now {op.mode})")
            if op.mode is not Mode.SUBSCRIBED and key in self.tracked.subscriptions:
                self.add(ActionKind.UNSUBSCRIBE, key, op.kind, f"no longer subscribed to events (now {op.mode})")

    def one_shot(self, op: DesiredOp) -> None:
        runs = self.runs_by_op.get(op.key, [])
        same = [r for r in runs if same_hash(r.spec_hash, op.spec_hash)]
        if same:
            last = same[-1]
            self.add(ActionKind.NOOP, op.key, op.kind, f"run {last.name} exists for this spec ({last.status})")
            return
        reason = "spec changed: new spec hash" if runs else "new operation"
        self.add(ActionKind.CREATE, op.key, op.kind, reason, run=self.request(op))

    def long_running(self, op: DesiredOp) -> None:
        runs = [r for r in self.runs_by_op.get(op.key, []) if r.kind in LONG_RUNNING_KINDS]
        active = [r for r in runs if not r.done]
        live = active[-1] if active else None
        if live is not None and live.status == "unschedulable":
            self.handled.add(live.name)
            self.resubmit(op, live)
            return
        if live is None:
            latest = runs[-1] if runs else None
            if latest is not None and same_hash(latest.spec_hash, op.spec_hash):
                if latest.status in RETRYABLE and latest.reason not in NOT_RETRIED:
                    self.retry(op, latest)
                    return
                self.add(
                    ActionKind.NOOP,
                    op.key,
                    op.kind,
                    f"last run {latest.name} is {latest.status}; change the spec to start it again",
                )
            else:
                reason = "spec changed; last run is finished" if runs else "new operation"
                self.add(ActionKind.CREATE, op.key, op.kind, reason, run=self.request(op))
            return
        self.handled.add(live.name)
        if not same_hash(live.spec_hash, op.spec_hash):
            diff = field_diff(live.effective or {}, op.effective) if live.effective is not None else ()
            self.add(
                ActionKind.UPDATE,
                op.key,
                op.kind,
                f"spec changed: update {live.name} in place",
                run=self.request(op, live.name),
                target=live.name,
                diff=diff,
            )
            return
        obj = self.observed.get(live.name)
        heal = self.options.self_heal
        then = "re-applying" if heal else "not re-applied (self_heal off)"
        if not live.submitted:
            # Recorded while the backend was unreachable: not drift, nothing to re-apply yet.
            self.add(ActionKind.NOOP, op.key, op.kind, f"{live.name} is recorded, not started yet (resume starts it)")
        elif self.observing and obj is None:
            self.add(
                ActionKind.DRIFT,
                op.key,
                op.kind,
                f"{live.name} is gone from the cluster; {then}",
                run=self.request(op, live.name) if heal else None,
                target=live.name,
            )
        elif obj is not None and not same_hash(obj.spec_hash, op.spec_hash):
            self.add(
                ActionKind.DRIFT,
                op.key,
                op.kind,
                f"{live.name} was edited in the cluster; {then}",
                run=self.request(op, live.name) if heal else None,
                target=live.name,
                observed=None if heal else obj,
            )
        else:
            self.add(ActionKind.NOOP, op.key, op.kind, f"{live.name} is {live.status} with this spec")

    def resubmit(self, op: DesiredOp, live: TrackedRun) -> None:
        """An unschedulable long-running run (its operator missing, say) is submitted again, as
        the same run, once its backoff elapsed: installing the operator is enough to converge."""
        why = f"{live.name} is unschedulable"
        changed = not same_hash(live.spec_hash, op.spec_hash)
        if live.reason in NOT_RETRIED and not changed:
            self.add(ActionKind.NOOP, op.key, op.kind, f"{why}: this backend cannot run it ({live.reason})")
            return
        attempt = live.retries + 1
        at = (live.updated_at or live.created_at) + timedelta(seconds=RETRY_BACKOFF.delay(attempt))
        if changed:
            why, at = f"{why}; spec changed", self.now  # a new spec deserves a try at once
        if at > self.now:
            self.add(ActionKind.NOOP, op.key, op.kind, f"{why}; retry {attempt} at {at.isoformat()}", not_before=at)
            return
        self.add(
            ActionKind.RETRY,
            op.key,
            op.kind,
            f"{why}; retry {attempt}",
            run=self.request(op, live.name),
            target=live.name,
        )

    def retry(self, op: DesiredOp, latest: TrackedRun) -> None:
        """Converge a long-running op whose run failed: a new attempt once its backoff elapsed."""
        root, done = retry_of(latest)
        attempt = done + 1
        at = (latest.finished_at or latest.created_at) + timedelta(seconds=RETRY_BACKOFF.delay(attempt))
        why = f"{latest.name} is {latest.status}"
        if at > self.now:
            self.add(ActionKind.NOOP, op.key, op.kind, f"{why}; retry {attempt} at {at.isoformat()}", not_before=at)
            return
        cause_id = f"retry:{root}:{attempt}"
        request = RunRequest(
            name=run_name(op.key, op.spec_hash, cause_id),
            op=op.key,
            kind=op.kind,
            spec_hash=op.spec_hash,
            effective=op.effective,
            cause=Cause.RETRY,
            cause_id=cause_id,
            commit=self.desired.commit,
            namespace=self.options.namespace,
        )
        self.add(ActionKind.CREATE, op.key, op.kind, f"{why}; retry {attempt}", run=request)

    def scheduled(self, op: DesiredOp) -> None:
        schedule = op.schedule or {}
        current = self.tracked.schedules.get(op.key)
        if current is not None and same_hash(current.spec_hash, op.spec_hash):
            self.add(ActionKind.NOOP, op.key, op.kind, "schedule registered with this spec")
            return
        ticks = next_ticks(schedule, self.now, self.options.ticks, self.options.tz)
        if current is None:
            self.add(
                ActionKind.REGISTER_SCHEDULE,
                op.key,
                op.kind,
                f"new {schedule.get('kind', '')} schedule".replace("  ", " "),
                schedule=schedule,
                ticks=ticks,
                spec_hash=op.spec_hash,
            )
        else:
            diff = field_diff(current.schedule, schedule)
            reason = "schedule changed" if diff else "spec changed; ticks use the new spec"
            self.add(
                ActionKind.UPDATE_SCHEDULE,
                op.key,
                op.kind,
                reason,
                schedule=schedule,
                ticks=ticks,
                diff=diff,
                spec_hash=op.spec_hash,
            )

    def subscribed(self, op: DesiredOp) -> None:
        current = self.tracked.subscriptions.get(op.key)
        refs = ", ".join(sorted({str(e.get("ref")) for e in op.events}))
        if current is None:
            reason = f"subscribe to {refs}" if refs else "subscribe"
        elif not same_hash(current.spec_hash, op.spec_hash):
            reason = f"subscription changed ({refs})" if refs else "subscription changed"
        else:
            self.add(ActionKind.NOOP, op.key, op.kind, "subscribed with this spec")
            return
        self.add(ActionKind.SUBSCRIBE, op.key, op.kind, reason, events=op.events, spec_hash=op.spec_hash)

    # --- what Git no longer has ---------------------------------------------------------------

    def removed_registrations(self) -> None:
        for key in sorted(self.tracked.schedules):
            if key.repo == self.desired.repo and key not in self.desired.ops and not self.protected(key):
                self.add(ActionKind.REMOVE_SCHEDULE, key, "", "removed from Git")
        for key in sorted(self.tracked.subscriptions):
            if key.repo == self.desired.repo and key not in self.desired.ops and not self.protected(key):
                self.add(ActionKind.UNSUBSCRIBE, key, "", "removed from Git")

    def why_not_prune(self, kind: str) -> str | None:
        if not self.options.prune_allowed(kind):
            return f"prune is off for {kind}"
        if not self.can_prune:
            return f"prune waits until every file is valid ({len(self.desired.invalid)} invalid)"
        return None

    def leftover_runs(self) -> None:
        for r in self.runs:
            if r.name in self.handled or self.protected(r.op):
                continue
            op = self.desired.ops.get(r.op)
            long_running = r.kind in LONG_RUNNING_KINDS
            superseded = (
                long_running and not r.done and (op is None or op.mode is Mode.LONG_RUNNING or r.kind != op.kind)
            )
            if op is not None and not superseded:
                continue  # a desired op's other runs: finished, left to finish, or started by ticks
            why = "removed from Git" if op is None else "superseded"
            blocked = self.why_not_prune(r.kind)
            obj = self.observed.get(r.name)
            if not r.done:
                if blocked is None:
                    kind = ActionKind.DELETE if long_running else ActionKind.STOP
                    self.add(kind, r.op, r.kind, why, target=r.name)
                    continue
                if self.observing and obj is None and r.live:
                    continue  # reported as drift below
                left = "left running" if long_running else "left to finish"
                self.add(ActionKind.NOOP, r.op, r.kind, f"{why}; {r.name} {left} ({blocked})", target=r.name)
                self.handled.add(r.name)
            elif obj is not None and blocked is None:
                self.add(ActionKind.PRUNE, r.op, r.kind, f"{why}; {r.name} is {r.status}", target=r.name)
                self.handled.add(r.name)

    def drift_reports(self) -> None:
        """Runs the DB thinks are active whose objects are gone: reported, marked unknown."""
        if not self.observing:
            return
        acted = {a.target for a in self.actions if a.target is not None}
        for r in self.runs:
            if r.name in acted or r.name in self.handled or not r.live or r.name in self.observed:
                continue
            self.add(
                ActionKind.DRIFT,
                r.op,
                r.kind,
                f"{r.name} is {r.status} in the DB but gone from the cluster",
                target=r.name,
            )

    def adoptions(self) -> None:
        for obj, op in self.to_adopt:
            self.add(
                ActionKind.ADOPT, op, obj.kind, "ours in the cluster, missing from the DB", target=obj.run, observed=obj
            )
        for obj, op in self.orphans:
            blocked = self.why_not_prune(obj.kind)
            if blocked is None:
                self.add(ActionKind.PRUNE, op, obj.kind, "orphan: its operation is not in Git", target=obj.run)
            else:
                self.add(
                    ActionKind.ADOPT,
                    op,
                    obj.kind,
                    f"orphan: its operation is not in Git; recorded, not pruned ({blocked})",
                    target=obj.run,
                    observed=obj,
                )


def plan(
    desired: DesiredState,
    observed: Sequence[ObservedObject] | None,
    tracked: TrackedState,
    now: datetime,
    options: PlanOptions | None = None,
) -> list[Action]:
    """The actions that make the cluster, scheduler and DB match `desired`, in apply order."""
    planner = _Planner(desired, observed, tracked, now, options or PlanOptions())
    planner.invalid_files()
    planner.adoptions()
    planner.desired_ops()
    planner.removed_registrations()
    planner.leftover_runs()
    planner.drift_reports()
    return sorted(planner.actions, key=_sort_key)


def changes(actions: Iterable[Action]) -> list[Action]:
    """The actions that change something (a converged plan has none)."""
    return [a for a in actions if a.changes_something]
