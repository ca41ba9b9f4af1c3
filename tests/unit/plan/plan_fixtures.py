"""Small builders for planner tests: desired ops, tracked runs, observed objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.errors import Located
from reconciler.model import (
    ANNOTATION_OP_KEY,
    DesiredOp,
    DesiredState,
    InvalidFile,
    Mode,
    ObservedObject,
    OpKey,
)
from reconciler.plan import TrackedRun

REPO = "r"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LONG_RUNNING = ("service", "raycluster", "daskcluster")


def h(tag: str) -> str:
    """A 64-hex spec hash made from a short tag."""
    return (tag.encode().hex() * 64)[:64]


def key(name: str, repo: str = REPO) -> OpKey:
    return OpKey(repo, f"ops/{name}.yaml", name)


def op(
    name: str,
    kind: str = "job",
    tag: str = "a",
    *,
    schedule: dict[str, Any] | None = None,
    events: tuple[dict[str, Any], ...] = (),
    image: str = "busybox",
) -> DesiredOp:
    if schedule:
        mode = Mode.SCHEDULED
    elif events:
        mode = Mode.SUBSCRIBED
    else:
        mode = Mode.LONG_RUNNING if kind in LONG_RUNNING else Mode.ONE_SHOT
    effective: dict[str, Any] = {"name": name, "run": {"kind": kind, "container": {"image": image}}}
    if schedule:
        effective["schedule"] = schedule
    return DesiredOp(
        key=key(name),
        kind=kind,
        mode=mode,
        spec_hash=h(tag),
        effective=effective,
        commit="c1",
        schedule=schedule,
        events=events,
    )


def desired(
    *ops: DesiredOp, invalid: tuple[str, ...] = (), kept: tuple[DesiredOp, ...] = (), commit: str = "c1"
) -> DesiredState:
    all_ops = {o.key: o for o in (*ops, *kept)}
    bad = {p: InvalidFile(p, (Located(p, 3, 5, "boom"),)) for p in invalid}
    return DesiredState(REPO, commit, all_ops, bad, frozenset(o.key for o in kept))


def run(
    name: str,
    op_name: str,
    kind: str = "job",
    tag: str = "a",
    status: str = "running",
    age: int = 0,
    effective: dict[str, Any] | None = None,
    repo: str = REPO,
) -> TrackedRun:
    return TrackedRun(
        name=name,
        op=key(op_name, repo),
        kind=kind,
        spec_hash=h(tag),
        status=status,
        created_at=NOW - timedelta(minutes=10 + age),
        effective=effective,
    )


def obj(
    name: str, op_name: str, kind: str = "job", tag: str = "a", status: str | None = "running", repo: str = REPO
) -> ObservedObject:
    return ObservedObject(
        run=name,
        op_slug=op_name,
        kind=kind,
        spec_hash=h(tag)[:63],
        status=status,
        annotations={ANNOTATION_OP_KEY: str(key(op_name, repo))},
    )
