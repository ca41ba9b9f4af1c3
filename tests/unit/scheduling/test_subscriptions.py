"""Event subscriptions: one run per qualifying transition, params from the upstream run."""

from __future__ import annotations

import datetime as dt

from reconciler.model import DesiredOp, Mode, OpKey, StatusTransition
from reconciler.scheduling.subscriptions import (
    Subscription,
    UpstreamRun,
    on_transition,
    subscriptions_of,
)
from reconciler.spec.io import Param

T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
A = OpKey("repo", "a.yaml", "a")
B = OpKey("repo", "b.yaml", "b")
C = OpKey("repo", "c.yaml", "c")


def sub(op: OpKey, ref: str, *kinds: str, **params: Param) -> Subscription:
    return Subscription(op, frozenset(kinds), ref, params)


def test_a_succeeded_run_creates_one_run_with_params_from_its_outputs() -> None:
    subs = [sub(B, "ops.a", "run_status_succeeded", model=Param(value="{{ ops.a.outputs.model }}"))]
    up = UpstreamRun("a-run-1", A, outputs={"model": "s3://m/1"})
    d = on_transition(subs, up, StatusTransition("a-run-1", "succeeded", T0))
    assert [(r.op, r.params) for r in d.runs] == [(B, {"model": "s3://m/1"})]
    assert d.runs[0].cause_id == d.transition_id == "event:a-run-1:succeeded@2024-05-01T12:00:00.000000Z"
    # Handling the same row again gives the same cause id: the DB's unique key makes it exactly once.
    again = on_transition(subs, up, StatusTransition("a-run-1", "succeeded", T0))
    assert again == d


def test_other_statuses_ops_and_repos_do_not_qualify() -> None:
    subs = [
        sub(B, "ops.a", "run_status_failed"),
        sub(OpKey("other", "b.yaml", "b"), "ops.a", "run_status_succeeded"),
        sub(C, "ops.x", "run_status_succeeded"),
    ]
    d = on_transition(subs, UpstreamRun("a-run-1", A), StatusTransition("a-run-1", "succeeded", T0))
    assert d.runs == () and d.problems == ()


def test_done_kind_matches_every_final_status_and_only_those() -> None:
    subs = [sub(B, "ops.a", "run_status_done")]
    for status, created in [("failed", 1), ("stopped", 1), ("succeeded", 1), ("running", 0), ("retrying", 0)]:
        d = on_transition(subs, UpstreamRun("r", A), StatusTransition("r", status, T0))
        assert len(d.runs) == created, status


def test_fixed_run_reference() -> None:
    subs = [sub(B, "runs.abc123", "run_status_succeeded", x=Param(ref="runs.abc123", value="outputs.x"))]
    d = on_transition(subs, UpstreamRun("abc123", A, outputs={"x": 3}), StatusTransition("abc123", "succeeded", T0))
    assert d.runs[0].params == {"x": 3}
    assert on_transition(subs, UpstreamRun("zzz", A), StatusTransition("zzz", "succeeded", T0)).runs == ()


def test_missing_output_is_a_problem_not_a_silent_drop() -> None:
    subs = [sub(B, "ops.a", "run_status_succeeded", m=Param(value="{{ ops.a.outputs.model }}"))]
    d = on_transition(subs, UpstreamRun("r", A, outputs={}), StatusTransition("r", "succeeded", T0))
    assert d.runs == ()
    assert len(d.problems) == 1 and "ops.a.outputs.model is not available" in d.problems[0].message


def test_two_entries_of_one_op_make_one_run_and_self_subscription_is_refused() -> None:
    subs = [
        sub(B, "ops.a", "run_status_succeeded"),
        sub(B, "ops.a", "run_status_done"),
        sub(A, "ops.a", "run_status_done"),
    ]
    d = on_transition(subs, UpstreamRun("r", A), StatusTransition("r", "succeeded", T0))
    assert [r.op for r in d.runs] == [B]
    assert [p.op for p in d.problems] == [A]


def test_chain_a_b_c() -> None:
    subs = [
        sub(B, "ops.a", "run_status_succeeded", n=Param(value="{{ ops.a.outputs.n }}")),
        sub(C, "ops.b", "run_status_succeeded", n=Param(ref="ops.b", value="outputs.n")),
    ]
    first = on_transition(subs, UpstreamRun("a1", A, outputs={"n": 1}), StatusTransition("a1", "succeeded", T0))
    (b_run,) = first.runs
    # B's run executes and reports its own output; its transition drives C.
    second = on_transition(
        subs,
        UpstreamRun("b1", B, inputs=b_run.params, outputs={"n": b_run.params["n"] + 1}),
        StatusTransition("b1", "succeeded", T0 + dt.timedelta(minutes=1)),
    )
    assert [(r.op, r.params) for r in second.runs] == [(C, {"n": 2})]


def test_subscriptions_from_a_desired_op() -> None:
    op = DesiredOp(
        key=B,
        kind="job",
        mode=Mode.SUBSCRIBED,
        spec_hash="h",
        effective={"params": {"m": {"ref": "ops.a", "value": "outputs.m"}, "k": 2}},
        commit="c",
        events=({"kinds": ["run_status_succeeded"], "ref": "ops.a"},),
    )
    (s,) = subscriptions_of(op)
    assert s.ref == "ops.a" and s.kinds == frozenset({"run_status_succeeded"})
    d = on_transition([s], UpstreamRun("r", A, outputs={"m": "x"}), StatusTransition("r", "succeeded", T0))
    assert d.runs[0].params == {"m": "x", "k": 2}
