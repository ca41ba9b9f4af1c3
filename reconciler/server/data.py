"""What the API and the dashboard show, read from the tracking DB and the daemon: one function per
thing shown, returning the API's models, so a page and its JSON never disagree.

Functions are synchronous (the store is), and called in a worker thread by the routes. They
never raise for a missing thing: they return None, and the route answers 404.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from reconciler.model import OpKey
from reconciler.server.models import (
    AppliedOut,
    ChildOut,
    CommitDetailOut,
    CommitOut,
    CommitStatusOut,
    HistoryOut,
    LatestRunOut,
    LocatedErrorOut,
    MetricPointOut,
    OpDetailOut,
    OpOut,
    PlanActionOut,
    RepoOut,
    RunDetailOut,
    RunOut,
    RunOutputsOut,
    ScheduleOut,
    SubscriptionOut,
    TickOut,
)
from reconciler.tracking import GitCommit, Operation, Run, ScheduleState, Store
from reconciler.views import run_row, schedule_row


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class RepoLive:
    """What the daemon knows of a configured repo beyond the database."""

    name: str
    url: str
    branch: str
    interval: float
    head: str | None = None
    last_fetch_ok: datetime | None = None
    last_error: str | None = None
    problem: str | None = None  # why /readyz names it, if it does


class DaemonView(Protocol):
    """What the API asks of the daemon (its live state, not in the database)."""

    def repos_live(self) -> list[RepoLive]: ...

    def compiled_spec(self, op_key: str) -> dict[str, Any] | None:
        """The operation as compiled at the applied commit; None when not loaded."""
        ...

    def timezone_of(self, repo: str) -> str: ...


@dataclass
class NoDaemon:
    """A view without a daemon (tests of pages over a bare store): the database alone."""

    repos: list[RepoLive] = field(default_factory=list)

    def repos_live(self) -> list[RepoLive]:
        return list(self.repos)

    def compiled_spec(self, op_key: str) -> dict[str, Any] | None:
        return None

    def timezone_of(self, repo: str) -> str:
        return "UTC"


# --- cursors ------------------------------------------------------------------------------------
#
# A cursor is where the previous page ended, written plainly so that any string of its form is a
# place to continue from (never an error the client could not foresee): `<microseconds since the
# epoch>~<id>` for what time orders (runs, commits), the last key for what names order (repos,
# operations, schedules), an offset for a run's children.

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIME_CURSOR = r"^[0-9]{1,17}~[0-9]{1,18}$"
OFFSET_CURSOR = r"^[0-9]{1,9}$"


class BadCursor(ValueError):
    pass


def time_cursor(at: datetime, row_id: int | None) -> str:
    micros = (at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}~{row_id or 0}"


def read_time_cursor(text: str) -> tuple[datetime, int]:
    if not re.fullmatch(TIME_CURSOR, text):
        raise BadCursor("cursor: not a cursor this server gave (<microseconds>~<id>)")
    micros, _, row_id = text.partition("~")
    return EPOCH + timedelta(microseconds=int(micros)), int(row_id)


def read_offset_cursor(text: str) -> int:
    if not re.fullmatch(OFFSET_CURSOR, text):
        raise BadCursor("cursor: not a cursor this server gave (an offset)")
    return int(text)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


# --- runs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFilter:
    repo: str | None = None
    op: str | None = None
    status: str | None = None
    cause: str | None = None
    since: datetime | None = None
    parent: str | None = None
    top_level: bool = False
    statuses: tuple[str, ...] = ()  # any of these (the dashboard's runs in flight)


def run_out(run: Run, op_key: str) -> RunOut:
    return RunOut.model_validate(run_row(run, op_key))


def runs(store: Store, where: RunFilter, limit: int, cursor: str | None) -> Page:
    before_at = read_time_cursor(cursor) if cursor else None
    rows = store.list_runs(
        repo=where.repo,
        op_key=where.op,
        status=where.status,
        cause=where.cause,
        since=where.since,
        parent=where.parent,
        top_level=where.top_level,
        statuses=where.statuses or None,
        before=before_at,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    items = [run_out(run, op) for run, op in rows]
    last = rows[-1][0] if rows else None
    following = time_cursor(last.created_at, last.id) if more and last is not None else None
    return Page(items, following)


def run_detail(store: Store, name: str) -> RunDetailOut | None:
    found = store.list_runs(name=name)
    if not found:
        return None
    [(run, op_key)] = found
    history = store.history(name)
    assert run.id is not None
    detail = store.run_detail(run.id)
    body = run_row(run, op_key)
    body["history"] = [
        HistoryOut(status=h.status, at=h.at.isoformat(), reason=h.reason, message=h.message) for h in history
    ]
    return RunDetailOut(
        **body,
        uuid=run.uuid,
        spec_hash=run.spec_hash,
        namespace=detail.namespace if detail is not None else None,
        params=dict(detail.params) if detail is not None else {},
        node=detail.node if detail is not None else None,
        trial_index=detail.trial_index if detail is not None else None,
        container=detail.container if detail is not None else None,
        spec=run.spec,
    )


def children(store: Store, name: str, where: RunFilter, limit: int, cursor: str | None) -> Page | None:
    """A DAG's ops or a matrix's trials, in creation order (trials by index), with their results."""
    if store.run(name) is None:
        return None
    start = read_offset_cursor(cursor) if cursor else 0
    rows = store.child_runs(name)
    rows = [
        (run, op, detail)
        for run, op, detail in rows
        if (where.status is None or str(run.status) == where.status)
        and (where.cause is None or str(run.cause) == where.cause)
        and (where.since is None or run.created_at >= where.since)
        and (where.op is None or op == where.op)
    ]
    page = rows[start : start + limit]
    latest = store.latest_metrics([run.name for run, _, _ in page])
    items = []
    for run, op, detail in page:
        outputs = dict(detail.outputs or {}) if detail is not None else {}
        outputs.update(store.reported_outputs(run.name))
        items.append(
            ChildOut(
                **run_row(run, op),
                node=detail.node if detail is not None else None,
                trial_index=detail.trial_index if detail is not None else None,
                params=dict(detail.params) if detail is not None else {},
                outputs=outputs,
                metrics=latest.get(run.name, {}),
            )
        )
    following = str(start + limit) if start + limit < len(rows) else None
    return Page(items, following)


def outputs(store: Store, name: str, backend_outputs: Callable[[str], Mapping[str, Any]]) -> RunOutputsOut | None:
    run = store.run(name)
    if run is None:
        return None
    assert run.id is not None
    detail = store.run_detail(run.id)
    values: dict[str, Any] = dict(detail.outputs or {}) if detail is not None and detail.outputs else {}
    if not values:
        values = dict(backend_outputs(name))
    values.update(store.reported_outputs(name))
    series = store.metric_series(name)
    return RunOutputsOut(
        run=name,
        params=dict(detail.params) if detail is not None else {},
        outputs=values,
        metrics={
            metric: [MetricPointOut(step=p.step, value=p.value, at=p.at.isoformat()) for p in points]
            for metric, points in series.items()
        },
    )


# --- repos and commits ------------------------------------------------------------------------------


def applied(commit: GitCommit | None) -> AppliedOut | None:
    if commit is None:
        return None
    return AppliedOut(
        sha=commit.sha,
        committed_at=commit.committed_at.isoformat(),
        recorded_at=commit.recorded_at.isoformat(),
        valid=commit.valid,
    )


def repos(store: Store, daemon: DaemonView, name: str | None, limit: int, cursor: str | None) -> Page:
    after = cursor
    live = {r.name: r for r in daemon.repos_live()}
    known = {r.name: r for r in store.repos()}
    names = sorted(set(live) | set(known))
    names = [n for n in names if (name is None or n == name) and (after is None or n > after)]
    page = names[:limit]
    items = []
    for repo in page:
        state, row = live.get(repo), known.get(repo)
        items.append(
            RepoOut(
                name=repo,
                url=state.url if state is not None else (row.url if row is not None else ""),
                branch=state.branch if state is not None else (row.branch if row is not None else ""),
                interval=state.interval if state is not None else None,
                head=state.head if state is not None else None,
                last_applied=applied(store.last_commit(repo)),
                ready=state is not None and state.problem is None,
                problem=(state.problem if state is not None else "not configured in this daemon"),
                last_error=state.last_error if state is not None else None,
                last_fetch_at=iso(state.last_fetch_ok) if state is not None else None,
            )
        )
    following = page[-1] if len(names) > limit and page else None
    return Page(items, following)


def located(error: Mapping[str, Any]) -> LocatedErrorOut:
    file, line, column = error.get("file"), error.get("line"), error.get("column")
    where = ":".join(str(p) for p in (file, line, column) if p is not None) or "?"
    return LocatedErrorOut(
        file=None if file is None else str(file),
        line=line if isinstance(line, int) else None,
        column=column if isinstance(column, int) else None,
        message=str(error.get("message", "")),
        location=where,
    )


def commit_out(repo: str, commit: GitCommit) -> CommitOut:
    return CommitOut(
        repo=repo,
        sha=commit.sha,
        branch=commit.branch,
        committed_at=commit.committed_at.isoformat(),
        recorded_at=commit.recorded_at.isoformat(),
        valid=commit.valid,
        errors=[located(e) for e in commit.errors or []],
    )


def commits(
    store: Store, repo: str, since: datetime | None, valid: bool | None, limit: int, cursor: str | None
) -> Page | None:
    if repo not in {r.name for r in store.repos()}:
        return None
    before = read_time_cursor(cursor) if cursor else None
    rows = store.commits(repo, since=since, valid=valid, before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    following = time_cursor(rows[-1].recorded_at, rows[-1].id) if more and rows else None
    return Page([commit_out(repo, c) for c in rows], following)


class Ambiguous(LookupError):
    pass


def find_commit(store: Store, repo: str, sha: str) -> GitCommit | None:
    """The commit `sha` (or the one commit whose sha starts with it, 7 characters or more)."""
    exact = store.commit(repo, sha)
    if exact is not None or len(sha) < 7:
        return exact
    found = store.commit_by_prefix(repo, sha)
    if len(found) > 1:
        raise Ambiguous(f"{sha} names more than one commit of {repo}")
    return found[0] if found else None


def commit_detail(store: Store, repo: str, sha: str) -> CommitDetailOut | None:
    commit = find_commit(store, repo, sha)
    if commit is None:
        return None
    rows = store.list_runs(repo=repo, commit=commit.sha)
    statuses = [
        CommitStatusOut(
            context=e.context,
            state=str(e.state),
            description=e.description,
            target_url=e.target_url,
            created_at=e.created_at.isoformat(),
            posted_at=iso(e.posted_at),
            superseded=e.superseded_at is not None,
            attempts=e.attempts,
            last_error=e.last_error,
        )
        for e in store.outbox(commit.sha, repo=repo)
    ]
    plan = None
    if commit.plan is not None:
        plan = [
            PlanActionOut(
                action=str(p.get("action")), op=str(p.get("op")), run=p.get("run"), reason=str(p.get("reason") or "")
            )
            for p in commit.plan
        ]
    base = commit_out(repo, commit)
    return CommitDetailOut(
        **base.model_dump(),
        plan=plan,
        runs=sorted((run_out(r, op) for r, op in rows), key=lambda r: r.created_at),
        statuses=statuses,
    )


# --- operations and schedules -------------------------------------------------------------------------


def _repo_of(op_key: str) -> str:
    return op_key.split(":", 1)[0]


def schedule_out(store: Store, daemon: DaemonView, op_key: str, state: ScheduleState, now: datetime) -> ScheduleOut:
    tz = state.tz or daemon.timezone_of(_repo_of(op_key))
    ticks = store.ticks(op_key)
    return ScheduleOut(
        **schedule_row(op_key, state, tz, now),
        repo=_repo_of(op_key),
        concurrency=state.concurrency,
        starting_deadline=state.starting_deadline_seconds,
        registered_at=iso(state.registered_at),
        missed=sum(t.missed_count or 1 for t in ticks if t.outcome == "missed"),
        skipped=sum(1 for t in ticks if t.outcome == "skipped"),
    )


def schedules(
    store: Store, daemon: DaemonView, repo: str | None, op: str | None, limit: int, cursor: str | None, now: datetime
) -> Page:
    after = cursor
    rows = [(k, s) for k, s in store.schedules(repo) if (op is None or k == op) and (after is None or k > after)]
    page = rows[:limit]
    following = page[-1][0] if len(rows) > limit and page else None
    return Page([schedule_out(store, daemon, k, s, now) for k, s in page], following)


def op_out(op: Operation, latest: Any, state: ScheduleState | None) -> OpOut:
    key = OpKey.parse(op.op_key)
    return OpOut(
        op=op.op_key,
        repo=key.repo,
        path=key.path,
        name=key.name,
        mode=op.mode,
        valid=op.invalid_since is None,
        invalid_since=iso(op.invalid_since),
        removed_at=iso(op.removed_at),
        spec_hash=op.last_good_spec_hash,
        commit=op.last_good_commit_sha,
        latest=LatestRunOut(name=latest.run_name, status=latest.status, at=latest.updated_at.isoformat())
        if latest is not None
        else None,
        next_tick=iso(state.next_tick_at) if state is not None else None,
    )


def ops(
    store: Store,
    repo: str | None,
    op: str | None,
    status: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
    include_removed: bool = True,
) -> Page:
    """Operations (DAG ops, trials and hooks, `<op>.<child>`, are listed under their run, not here)."""
    after = cursor
    latest = store.latest_status_per_op(repo)
    states = dict(store.schedules(repo))
    rows = [
        o
        for o in store.operations(repo, include_removed=include_removed)
        if "." not in OpKey.parse(o.op_key).name
        and (op is None or o.op_key == op)
        and (after is None or o.op_key > after)
        and (status is None or (o.op_key in latest and str(latest[o.op_key].status) == status))
        and (since is None or o.updated_at >= since)
    ]
    page = rows[:limit]
    following = page[-1].op_key if len(rows) > limit and page else None
    return Page([op_out(o, latest.get(o.op_key), states.get(o.op_key)) for o in page], following)


def op_detail(store: Store, daemon: DaemonView, op_key: str, now: datetime, runs_shown: int = 20) -> OpDetailOut | None:
    op = store.operation(op_key)
    if op is None:
        return None
    latest = store.latest_status_per_op(_repo_of(op_key)).get(op_key)
    state = store.schedule_state(op_key)
    recent = store.list_runs(op_key=op_key, limit=runs_shown)
    spec = daemon.compiled_spec(op_key)
    if spec is None:
        spec = next((run.spec for run, _ in recent if run.spec), None)
    ticks = [
        TickOut(
            outcome=t.outcome,
            tick_at=t.tick_at.isoformat(),
            until=iso(t.missed_until),
            count=t.missed_count or 1,
            reason=t.reason,
            message=t.message,
        )
        for t in reversed(store.ticks(op_key))
        if t.outcome in ("missed", "skipped")
    ][:50]
    return OpDetailOut(
        **op_out(op, latest, state).model_dump(),
        spec=spec,
        schedule=schedule_out(store, daemon, op_key, state, now) if state is not None else None,
        ticks=ticks,
        subscriptions=[
            SubscriptionOut(op=sub, source=source, kinds=kinds)
            for sub, source, kinds in store.subscription_links(op_key)
        ],
        runs=[run_out(run, key) for run, key in recent],
    )


__all__ = [
    "Ambiguous",
    "BadCursor",
    "DaemonView",
    "NoDaemon",
    "Page",
    "RepoLive",
    "RunFilter",
    "children",
    "commit_detail",
    "commits",
    "op_detail",
    "ops",
    "outputs",
    "read_offset_cursor",
    "read_time_cursor",
    "repos",
    "run_detail",
    "run_out",
    "runs",
    "schedules",
    "time_cursor",
]
