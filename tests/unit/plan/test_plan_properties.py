"""Safety rules and convergence of the planner, over generated desired/observed/tracked states."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.model import ANNOTATION_OP_KEY, DesiredOp, DesiredState, ObservedObject
from reconciler.plan import (
    DESTRUCTIVE,
    Action,
    ActionKind,
    PlanOptions,
    TrackedRun,
    TrackedSchedule,
    TrackedState,
    TrackedSubscription,
    apply_effects,
    changes,
    plan,
)
from reconciler.statuses import RUN_STATUSES
from tests.unit.plan.plan_fixtures import NOW, REPO, desired, h, key, obj, op

STATUSES = tuple(sorted(s.value for s in RUN_STATUSES))
NAMES = ("a", "b", "c", "d", "e", "f")
KINDS = ("job", "service", "dag", "raycluster", "tfjob")
TAGS = ("x", "y")
CRON = {"kind": "cron", "cron": "0 * * * *"}
EVENTS = ({"kinds": ["run_status_done"], "ref": "ops.a"},)


@dataclass(frozen=True)
class World:
    desired: DesiredState
    observed: list[ObservedObject]
    tracked: TrackedState
    options: PlanOptions


@st.composite
def desired_ops(draw: st.DrawFn, name: str) -> DesiredOp:
    kind = draw(st.sampled_from(KINDS))
    tag = draw(st.sampled_from(TAGS))
    mode = draw(st.sampled_from(("plain", "plain", "schedule", "events")))
    return op(
        name,
        kind,
        tag,
        schedule=CRON if mode == "schedule" else None,
        events=EVENTS if mode == "events" else (),
    )


@st.composite
def worlds(draw: st.DrawFn) -> World:
    valid: list[DesiredOp] = []
    kept: list[DesiredOp] = []
    invalid: list[str] = []
    # Half the worlds are fully valid, so that prune can happen at all.
    states = ("absent", "valid", "valid", "kept", "invalid") if draw(st.booleans()) else ("absent", "valid")
    for name in NAMES:
        state = draw(st.sampled_from(states))
        if state == "valid":
            valid.append(draw(desired_ops(name)))
        elif state == "kept":
            kept.append(draw(desired_ops(name)))
            invalid.append(f"ops/{name}.yaml")
        elif state == "invalid":
            invalid.append(f"ops/{name}.yaml")
    want = desired(*valid, invalid=tuple(invalid), kept=tuple(kept))

    run_names = draw(st.lists(st.sampled_from([f"run-{i}" for i in range(10)]), unique=True, max_size=8))
    runs: list[TrackedRun] = []
    for i, name in enumerate(run_names):
        runs.append(
            TrackedRun(
                name=name,
                op=key(draw(st.sampled_from(NAMES)), draw(st.sampled_from((REPO, REPO, "other")))),
                kind=draw(st.sampled_from(KINDS)),
                spec_hash=h(draw(st.sampled_from(TAGS))),
                status=draw(st.sampled_from(STATUSES)),
                created_at=NOW - timedelta(minutes=draw(st.integers(1, 5)) + i),
            )
        )
    # Observed: some tracked runs (maybe changed), plus objects the DB does not know.
    observed: list[ObservedObject] = []
    for name in [*run_names, *(f"stray-{i}" for i in range(4))]:
        if not draw(st.booleans()):
            continue
        owner = draw(st.sampled_from(NAMES))
        found = obj(
            name,
            owner,
            kind=draw(st.sampled_from(KINDS)),
            tag=draw(st.sampled_from(TAGS)),
            status=draw(st.sampled_from((None, *STATUSES))),
            repo=draw(st.sampled_from((REPO, REPO, REPO, "other"))),
        )
        if draw(st.integers(0, 9)) == 0:  # not attributable: no op-key annotation
            found = ObservedObject(found.run, found.op_slug, found.kind, found.spec_hash, found.status)
        observed.append(found)
    schedules = {
        key(n): TrackedSchedule(key(n), h(draw(st.sampled_from(TAGS))), CRON)
        for n in draw(st.lists(st.sampled_from(NAMES), unique=True))
    }
    subscriptions = {
        key(n): TrackedSubscription(key(n), h(draw(st.sampled_from(TAGS))), EVENTS)
        for n in draw(st.lists(st.sampled_from(NAMES), unique=True))
    }
    prune = {k: draw(st.booleans()) for k in draw(st.lists(st.sampled_from(KINDS), unique=True))}
    return World(want, observed, TrackedState(tuple(runs), schedules, subscriptions), PlanOptions(prune=prune))


def _plan(world: World) -> list[Action]:
    return plan(world.desired, world.observed, world.tracked, NOW, world.options)


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(worlds())
def test_operations_of_invalid_files_are_never_stopped_deleted_pruned_or_unregistered(world: World) -> None:
    protected = set(world.desired.invalid)
    for action in _plan(world):
        if action.action in (*DESTRUCTIVE, ActionKind.REMOVE_SCHEDULE, ActionKind.UNSUBSCRIBE):
            assert action.op.path not in protected, action
            assert action.op not in world.desired.kept, action


@SETTINGS
@given(worlds())
def test_prune_only_owned_objects_where_policy_allows_and_desired_is_fully_valid(world: World) -> None:
    ours = {o.run for o in world.observed if o.annotations.get(ANNOTATION_OP_KEY, "").startswith(f"{REPO}:")}
    tracked = {r.name for r in world.tracked.runs if r.op.repo == REPO}
    for action in _plan(world):
        if action.action in DESTRUCTIVE:
            assert action.target in ours | tracked, action
            assert world.options.prune_allowed(action.kind), action
            assert world.desired.fully_valid, action
            assert action.op not in world.desired.ops or action.action is ActionKind.DELETE, action


@SETTINGS
@given(worlds())
def test_planning_again_after_applying_the_plan_changes_nothing(world: World) -> None:
    actions = _plan(world)
    observed, tracked = apply_effects(actions, world.observed, world.tracked, NOW)
    # At the same instant: with time passing, a failed long-running run is (rightly) retried.
    again = plan(world.desired, observed, tracked, NOW, world.options)
    assert changes(again) == [], (changes(actions), changes(again))


@SETTINGS
@given(worlds(), st.randoms(use_true_random=False))
def test_same_inputs_in_any_order_give_the_same_plan(world: World, rnd: random.Random) -> None:
    first = _plan(world)
    assert _plan(world) == first
    observed = list(world.observed)
    runs = list(world.tracked.runs)
    rnd.shuffle(observed)
    rnd.shuffle(runs)
    shuffled = TrackedState(
        tuple(runs),
        dict(reversed(list(world.tracked.schedules.items()))),
        dict(reversed(list(world.tracked.subscriptions.items()))),
    )
    ops = dict(reversed(list(world.desired.ops.items())))
    want = DesiredState(world.desired.repo, world.desired.commit, ops, world.desired.invalid, world.desired.kept)
    assert plan(want, observed, shuffled, NOW, world.options) == first
