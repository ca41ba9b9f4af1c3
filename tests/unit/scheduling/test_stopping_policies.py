"""Per-run stopping policies (median, diff, truncation) on values reported while runs run."""

from __future__ import annotations

from typing import Any

from reconciler.scheduling.early_stopping import stop_trial
from reconciler.spec.matrix import (
    DiffStoppingPolicy,
    MedianStoppingPolicy,
    MetricEarlyStopping,
    TruncationStoppingPolicy,
)


def rule(policy: Any, optimization: str = "minimize") -> list[MetricEarlyStopping]:
    return [MetricEarlyStopping(metric="loss", value=0.0, optimization=optimization, policy=policy)]


def series(*values: float) -> list[tuple[int, float]]:
    return list(enumerate(values))


DONE = {"a": "succeeded", "b": "succeeded", "c": "succeeded"}


def test_median_stops_a_run_worse_than_the_median_of_running_averages() -> None:
    policy = MedianStoppingPolicy(evaluation_interval=1)
    peers = {"a": series(1.0, 0.6), "b": series(1.2, 0.8), "c": series(2.0, 1.8)}
    # Averages up to step 1: a 0.8, b 1.0, c 1.9: median 1.0.
    worse = stop_trial(rule(policy), "x", {"loss": {**peers, "x": series(1.5, 1.1)}}, {**DONE, "x": "running"})
    assert worse is not None and worse.reason == "EarlyStoppingMedian" and "median 1" in worse.message
    better = stop_trial(rule(policy), "x", {"loss": {**peers, "x": series(1.5, 0.9)}}, {**DONE, "x": "running"})
    assert better is None
    # Maximising, the same numbers mean the opposite.
    low = {"loss": {**peers, "x": series(0.5, 0.9)}}
    assert stop_trial(rule(policy), "x", low, {**DONE, "x": "running"}) is None
    assert stop_trial(rule(policy, "maximize"), "x", low, {**DONE, "x": "running"}) is not None


def test_a_policy_waits_for_its_interval_and_its_samples() -> None:
    peers = {"a": series(0.1, 0.1, 0.1, 0.1)}
    bad = {"loss": {**peers, "x": series(9.0, 9.0, 9.0)}}
    statuses = {"a": "succeeded", "x": "running"}
    assert stop_trial(rule(MedianStoppingPolicy(evaluation_interval=2)), "x", bad, statuses) is None  # 3 values
    assert stop_trial(rule(MedianStoppingPolicy(evaluation_interval=3)), "x", bad, statuses) is not None
    assert stop_trial(rule(MedianStoppingPolicy(evaluation_interval=1, min_interval=4)), "x", bad, statuses) is None
    assert stop_trial(rule(MedianStoppingPolicy(evaluation_interval=1, min_samples=2)), "x", bad, statuses) is None
    # Running peers are not the median's reference.
    assert (
        stop_trial(rule(MedianStoppingPolicy(evaluation_interval=1)), "x", bad, {"a": "running", "x": "running"})
        is None
    )


def test_diff_stops_a_run_too_far_from_the_best() -> None:
    policy = DiffStoppingPolicy(percent=20, evaluation_interval=1)
    peers = {"a": series(1.0, 0.5), "b": series(2.0, 1.5)}
    statuses = {"a": "succeeded", "b": "succeeded", "x": "running"}
    assert stop_trial(rule(policy), "x", {"loss": {**peers, "x": series(0.9, 0.59)}}, statuses) is None  # 18% off
    far = stop_trial(rule(policy), "x", {"loss": {**peers, "x": series(0.9, 0.61)}}, statuses)
    assert far is not None and far.reason == "EarlyStoppingDiff"


def test_truncation_stops_the_worst_share_of_the_runs_compared() -> None:
    policy = TruncationStoppingPolicy(percent=50, evaluation_interval=1)
    running = {"a": "running", "b": "running", "c": "succeeded", "x": "running"}
    values = {"a": series(0.2), "b": series(0.3), "c": series(0.1)}
    # Compared: a, b (running) and x; c only with includeSucceeded.
    worst = stop_trial(rule(policy), "x", {"loss": {**values, "x": series(0.4)}}, running)
    assert worst is not None and worst.reason == "EarlyStoppingTruncation"
    assert stop_trial(rule(policy), "x", {"loss": {**values, "x": series(0.1)}}, running) is None
    with_done = TruncationStoppingPolicy(percent=50, evaluation_interval=1, include_succeeded=True)
    assert stop_trial(rule(with_done), "x", {"loss": {**values, "x": series(0.25)}}, running) is not None


def test_without_a_policy_nothing_is_judged_while_running() -> None:
    plain = [MetricEarlyStopping(metric="loss", value=0.1, optimization="minimize")]
    assert (
        stop_trial(plain, "x", {"loss": {"a": series(0.0), "x": series(9.0)}}, {"a": "succeeded", "x": "running"})
        is None
    )
