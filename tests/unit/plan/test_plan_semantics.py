"""The planner, one design.md §4 row (and §5 rule) at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from reconciler.model import ObservedObject, run_name
from reconciler.plan import (
    Action,
    ActionKind,
    PlanOptions,
    TrackedSchedule,
    TrackedState,
    TrackedSubscription,
    changes,
    plan,
)
from tests.unit.plan.plan_fixtures import NOW, desired, h, key, obj, op, run

A = ActionKind


def kinds(actions: list[Action]) -> list[tuple[str, str, str | None]]:
    return [(a.action.value, a.op.name, a.target) for a in changes(actions)]


def test_new_one_shot_op_creates_one_run_with_a_deterministic_name() -> None:
    train = op("train")
    actions = plan(desired(train), [], TrackedState(), NOW)
    (create,) = changes(actions)
    assert create.action is A.CREATE
    assert create.run is not None
    assert create.run.name == run_name(train.key, train.spec_hash, "c1")
    assert create.run.cause_id == "c1"
    assert create.run.annotations()["reconciler.polyaxon.io/op-key"] == "r:ops/train.yaml#train"
    assert plan(desired(train), [], TrackedState(), NOW) == actions


def test_same_spec_hash_is_a_noop_and_a_new_hash_a_new_run_leaving_the_old_one() -> None:
    tracked = TrackedState(runs=(run("train-1", "train", tag="a"),))
    observed = [obj("train-1", "train", tag="a")]
    same = plan(desired(op("train", tag="a")), observed, tracked, NOW)
    assert changes(same) == []
    assert [a.action for a in same] == [A.NOOP]
    changed = plan(desired(op("train", tag="b")), observed, tracked, NOW)
    assert kinds(changed) == [("create", "train", None)]  # train-1 is not stopped


def test_removed_one_shot_op_is_left_to_finish_unless_prune_is_on() -> None:
    tracked = TrackedState(runs=(run("t-1", "train"), run("t-0", "train", status="succeeded", age=5)))
    observed = [obj("t-1", "train"), obj("t-0", "train", status="succeeded")]
    default = plan(desired(), observed, tracked, NOW)
    assert changes(default) == []
    assert "left to finish (prune is off for job)" in default[0].reason
    pruning = plan(desired(), observed, tracked, NOW, PlanOptions(prune={"job": True}))
    assert kinds(pruning) == [("stop", "train", "t-1"), ("prune", "train", "t-0")]


def test_schedule_register_update_with_ticks_and_remove() -> None:
    cron = {"kind": "cron", "cron": "0 2 * * *"}
    nightly = op("nightly", schedule=cron)
    (register,) = changes(plan(desired(nightly), [], TrackedState(), NOW))
    assert register.action is A.REGISTER_SCHEDULE
    assert [t.isoformat() for t in register.ticks] == [
        "2024-06-02T02:00:00+00:00",
        "2024-06-03T02:00:00+00:00",
        "2024-06-04T02:00:00+00:00",
    ]
    tracked = TrackedState(schedules={nightly.key: TrackedSchedule(nightly.key, h("a"), cron)})
    assert changes(plan(desired(nightly), [], tracked, NOW)) == []
    moved = op("nightly", tag="b", schedule={"kind": "cron", "cron": "30 3 * * *"})
    (update,) = changes(plan(desired(moved), [], tracked, NOW))
    assert update.action is A.UPDATE_SCHEDULE
    assert [str(c) for c in update.diff] == ['~ cron: "0 2 * * *" -> "30 3 * * *"']
    assert update.ticks[0].isoformat() == "2024-06-02T03:30:00+00:00"
    assert kinds(plan(desired(), [], tracked, NOW)) == [("remove_schedule", "nightly", None)]


def test_subscription_subscribe_update_and_unsubscribe() -> None:
    events = ({"kinds": ["run_status_succeeded"], "ref": "ops.train"},)
    notify = op("notify", events=events)
    (sub,) = changes(plan(desired(notify), [], TrackedState(), NOW))
    assert (sub.action, sub.reason) == (A.SUBSCRIBE, "subscribe to ops.train")
    tracked = TrackedState(subscriptions={notify.key: TrackedSubscription(notify.key, h("a"), events)})
    assert changes(plan(desired(notify), [], tracked, NOW)) == []
    (update,) = changes(plan(desired(op("notify", tag="b", events=events)), [], tracked, NOW))
    assert update.action is A.SUBSCRIBE
    assert update.reason.startswith("subscription changed")
    assert kinds(plan(desired(), [], tracked, NOW)) == [("unsubscribe", "notify", None)]


def test_service_is_updated_in_place_with_a_field_diff() -> None:
    old = {"name": "web", "run": {"kind": "service", "container": {"image": "nginx:1"}}}
    tracked = TrackedState(runs=(run("web-1", "web", kind="service", effective=old),))
    observed = [obj("web-1", "web", kind="service")]
    assert changes(plan(desired(op("web", "service")), observed, tracked, NOW)) == []
    new = op("web", "service", tag="b", image="nginx:2")
    (update,) = changes(plan(desired(new), observed, tracked, NOW))
    assert update.action is A.UPDATE
    assert update.run is not None and update.run.name == "web-1"  # same object, new spec
    assert [str(c) for c in update.diff] == ['~ run.container.image: "nginx:1" -> "nginx:2"']


def test_removed_service_is_deleted_by_default_and_kept_when_prune_is_off() -> None:
    tracked = TrackedState(runs=(run("web-1", "web", kind="service"),))
    observed = [obj("web-1", "web", kind="service")]
    assert kinds(plan(desired(), observed, tracked, NOW)) == [("delete", "web", "web-1")]
    off = plan(desired(), observed, tracked, NOW, PlanOptions(prune={"service": False}))
    assert changes(off) == []
    assert "left running (prune is off for service)" in off[0].reason


def test_a_stopped_service_with_same_spec_is_not_restarted() -> None:
    tracked = TrackedState(runs=(run("web-1", "web", kind="service", status="stopped"),))
    actions = plan(desired(op("web", "service")), [], tracked, NOW)
    assert changes(actions) == []
    changed = plan(desired(op("web", "service", tag="b")), [], tracked, NOW)
    assert kinds(changed) == [("create", "web", None)]


def test_a_failed_service_is_retried_with_backoff_until_it_runs() -> None:
    """Convergence: a long-running run that failed or could not be scheduled is tried again after
    10 s, 20 s, 40 s ... (at most 10 min), each attempt a run of its own (cause retry)."""
    failed = replace(run("web-1", "web", kind="service", status="failed"), finished_at=NOW - timedelta(seconds=5))
    waiting = plan(desired(op("web", "service")), [], TrackedState(runs=(failed,)), NOW)
    assert changes(waiting) == []
    [noop] = waiting
    assert noop.not_before == NOW + timedelta(seconds=5) and "retry 1" in noop.reason
    [first] = changes(plan(desired(op("web", "service")), [], TrackedState(runs=(failed,)), NOW + timedelta(seconds=5)))
    assert first.action.value == "create" and first.run is not None
    assert (first.run.cause.value, first.run.cause_id) == ("retry", "retry:web-1:1")
    # The retry failed too: the next one waits twice as long and follows the same first run.
    again = replace(
        run(first.run.name, "web", kind="service", status="failed"),
        cause="retry",
        cause_id="retry:web-1:1",
        finished_at=NOW,
    )
    [wait] = plan(desired(op("web", "service")), [], TrackedState(runs=(failed, again)), NOW + timedelta(seconds=19))
    assert wait.not_before == NOW + timedelta(seconds=20)
    [second] = changes(
        plan(desired(op("web", "service")), [], TrackedState(runs=(failed, again)), NOW + timedelta(seconds=20))
    )
    assert second.run is not None and second.run.cause_id == "retry:web-1:2"


def test_an_unschedulable_service_is_submitted_again_as_the_same_run_with_backoff() -> None:
    """A missing operator, say: the same run is submitted again (its history counts the retries)
    until the operator is there; the wait doubles with each retry."""
    stuck = replace(
        run("ray-1", "ray", kind="raycluster", status="unschedulable"), updated_at=NOW, retries=2, reason="Retry"
    )
    [wait] = plan(desired(op("ray", "raycluster")), [], TrackedState(runs=(stuck,)), NOW + timedelta(seconds=39))
    assert wait.action.value == "noop" and wait.not_before == NOW + timedelta(seconds=40)
    [again] = changes(
        plan(desired(op("ray", "raycluster")), [], TrackedState(runs=(stuck,)), NOW + timedelta(seconds=40))
    )
    assert (again.action.value, again.target) == ("retry", "ray-1")
    assert again.run is not None and again.run.name == "ray-1"


def test_a_run_the_backend_can_never_run_is_not_retried() -> None:
    never = replace(run("ray-1", "ray", kind="raycluster", status="unschedulable"), reason="UnsupportedKind")
    assert (
        changes(plan(desired(op("ray", "raycluster")), [], TrackedState(runs=(never,)), NOW + timedelta(hours=1))) == []
    )


def test_drift_is_reapplied_for_services_and_reported_for_jobs() -> None:
    tracked = TrackedState(runs=(run("web-1", "web", kind="service"), run("t-1", "train")))
    want = desired(op("web", "service"), op("train"))
    gone = plan(want, [], tracked, NOW)
    assert kinds(gone) == [("drift", "web", "web-1"), ("drift", "train", "t-1")]
    reapply, report = changes(gone)
    assert reapply.run is not None and reapply.run.name == "web-1"
    assert report.run is None
    edited = plan(want, [obj("web-1", "web", kind="service", tag="z"), obj("t-1", "train")], tracked, NOW)
    assert kinds(edited) == [("drift", "web", "web-1")]
    assert "edited in the cluster" in changes(edited)[0].reason
    # Not observed at all (no cluster access): nothing is reported.
    assert changes(plan(want, None, tracked, NOW)) == []


def test_a_run_recorded_while_the_backend_was_unreachable_is_not_drift() -> None:
    """A commit (or a tick) landing during an API server outage records its run, and the submit
    fails; the run has no object yet. Reported as drift it became `unknown` and never ran."""
    waiting = (
        replace(run("web-1", "web", kind="service", status="created"), submitted=False),
        replace(run("t-1", "train", status="created"), submitted=False),
    )
    actions = plan(desired(op("web", "service"), op("train")), [], TrackedState(runs=waiting), NOW)
    assert changes(actions) == []


def test_untracked_objects_are_adopted_instead_of_created_and_orphans_pruned() -> None:
    observed = [obj("t-9", "train"), obj("old-1", "old", kind="service"), obj("gone-1", "gone")]
    actions = plan(desired(op("train")), observed, TrackedState(), NOW)
    assert kinds(actions) == [
        ("adopt", "gone", "gone-1"),  # a job: prune is off, so it is recorded, not deleted
        ("adopt", "train", "t-9"),
        ("prune", "old", "old-1"),
    ]


def test_adopted_service_with_an_old_spec_is_updated_in_the_same_plan() -> None:
    observed = [obj("web-9", "web", kind="service", tag="a")]
    actions = plan(desired(op("web", "service", tag="b")), observed, TrackedState(), NOW)
    assert kinds(actions) == [("adopt", "web", "web-9"), ("update", "web", "web-9")]


def test_objects_of_other_repos_or_without_an_op_key_are_left_alone() -> None:
    foreign = obj("x-1", "x", kind="service", repo="other")
    anonymous = ObservedObject(run="y-1", op_slug="y", kind="service", spec_hash=h("a")[:63])
    assert changes(plan(desired(), [foreign, anonymous], TrackedState(), NOW)) == []


def test_invalid_file_protects_its_operations_even_without_a_previous_state() -> None:
    tracked = TrackedState(
        runs=(run("web-1", "web", kind="service"),),
        schedules={key("web"): TrackedSchedule(key("web"), h("a"), {"kind": "cron", "cron": "* * * * *"})},
    )
    observed = [obj("web-1", "web", kind="service")]
    actions = plan(desired(invalid=("ops/web.yaml",)), observed, tracked, NOW)
    assert [a.action for a in actions] == [A.INVALID]
    assert actions[0].reason == "ops/web.yaml:3:5: boom"
    kept = plan(desired(invalid=("ops/web.yaml",), kept=(op("web", "service"),)), observed, tracked, NOW)
    assert [a.action for a in kept] == [A.INVALID, A.NOOP]
    assert "keeping the last good state of 1 operation(s)" in kept[0].reason


def test_prune_waits_for_a_fully_valid_desired_state() -> None:
    tracked = TrackedState(runs=(run("web-1", "web", kind="service"),))
    observed = [obj("web-1", "web", kind="service")]
    actions = plan(desired(invalid=("ops/other.yaml",)), observed, tracked, NOW)
    assert changes(actions) == []
    assert any("prune waits until every file is valid (1 invalid)" in a.reason for a in actions)


def test_a_service_that_becomes_a_job_has_its_service_removed() -> None:
    tracked = TrackedState(runs=(run("web-1", "web", kind="service"),))
    observed = [obj("web-1", "web", kind="service")]
    actions = plan(desired(op("web", "job", tag="b")), observed, tracked, NOW)
    assert kinds(actions) == [("create", "web", None), ("delete", "web", "web-1")]
    assert "superseded" in changes(actions)[1].reason


def test_order_services_then_subscriptions_then_jobs_then_removals() -> None:
    events = ({"kinds": ["run_status_succeeded"], "ref": "ops.a-job"},)
    tracked = TrackedState(runs=(run("gone-1", "gone", kind="service"),))
    actions = plan(
        desired(op("a-job"), op("z-web", "service"), op("m-notify", events=events)),
        [obj("gone-1", "gone", kind="service")],
        tracked,
        NOW,
    )
    assert kinds(actions) == [
        ("create", "z-web", None),
        ("subscribe", "m-notify", None),
        ("create", "a-job", None),
        ("delete", "gone", "gone-1"),
    ]


def test_same_plan_whatever_the_input_order() -> None:
    runs = (run("a-1", "a"), run("b-1", "b", kind="service"), run("c-1", "c", status="succeeded"))
    observed = [obj("a-1", "a"), obj("b-1", "b", kind="service"), obj("z-1", "z")]
    want = desired(op("a", tag="b"), op("d", "service"))
    first = plan(want, observed, TrackedState(runs=runs), NOW)
    second = plan(want, list(reversed(observed)), TrackedState(runs=tuple(reversed(runs))), NOW)
    assert first == second


def test_self_heal_off_reports_drift_and_re_applies_nothing() -> None:
    tracked = TrackedState(runs=(run("web-1", "web", kind="service"),))
    want = desired(op("web", "service"))
    off = PlanOptions(self_heal=False)
    [gone] = changes(plan(want, [], tracked, NOW, off))
    assert (gone.action.value, gone.run) == ("drift", None) and "self_heal off" in gone.reason
    edited = obj("web-1", "web", kind="service", tag="z")
    [report] = changes(plan(want, [edited], tracked, NOW, off))
    assert report.run is None and report.observed == edited, "reported only: the applier changes nothing"
