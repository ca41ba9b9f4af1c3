"""Early stopping of a DAG or a matrix, from the results its children reported so far.

Both kinds stop the same way: on a metric that reached its target (the search is done: the
parent succeeds) or on a share of failed children (the parent fails): `check`.

A `metric_early_stopping` with a `policy` also stops one child at a time, on the values of its
metric reported while it runs (`stop_trial`), compared with its siblings' at the same step, as
Polyaxon's per-run stopping policies do:

- `median`: stop a run whose best value so far is worse than the median of the running averages
  (up to that step) of the siblings that succeeded;
- `diff`: stop a run whose best value so far is worse, by more than `percent` %, than the best
  value (up to that step) among the siblings that succeeded;
- `truncation`: stop a run that ranks in the worst `percent` % of the runs compared at that
  step: the active siblings, and the succeeded ones with `includeSucceeded`.

A policy judges a run every `evaluationInterval` values it reported, from the `minInterval`-th
on (default: the first evaluation), and only with at least `minSamples` (default 1) siblings
to compare. Steps are the run's own (`step` in a report) or the metric's count of values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.statuses import FAILURES, Status, is_active, is_done


@dataclass(frozen=True)
class Result:
    """One child as far as early stopping cares: its status and numeric outputs."""

    status: str | None
    metrics: dict[str, Any]


@dataclass(frozen=True)
class EarlyStop:
    status: str  # what the parent becomes: succeeded on a metric, failed on failures
    reason: str
    message: str


def _maximize(optimization: Any) -> bool:
    # Polyaxon accepts "maximize"/"minimize" and, from older files, 1 / -1.
    if isinstance(optimization, (int, float)):
        return optimization > 0
    return str(optimization) == "maximize"


def check(policies: Sequence[Any] | None, results: Sequence[Result], total: int) -> EarlyStop | None:
    """The first policy that holds, or None. `total` is how many children the parent has or will have."""
    for policy in policies or ():
        kind = getattr(policy, "kind", None)
        if kind == "failure_early_stopping":
            percent = policy.percent
            if not isinstance(percent, (int, float)) or total <= 0:
                continue
            failed = sum(1 for r in results if r.status in FAILURES)
            if failed and failed * 100 >= percent * total:
                return EarlyStop(
                    Status.FAILED,
                    "EarlyStoppingFailures",
                    f"{failed} of {total} failed, at least {percent}% (failure early stopping)",
                )
        elif kind == "metric_early_stopping":
            target = policy.value
            if not isinstance(target, (int, float)):
                continue
            maximize = _maximize(policy.optimization)
            for r in results:
                value = r.metrics.get(policy.metric)
                if r.status != Status.SUCCEEDED or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                if (value >= target) if maximize else (value <= target):
                    better = ">=" if maximize else "<="
                    return EarlyStop(
                        Status.SUCCEEDED,
                        "EarlyStoppingMetric",
                        f"{policy.metric} = {value} {better} {target} (metric early stopping)",
                    )
    return None


@dataclass(frozen=True)
class TrialStop:
    reason: str
    message: str


Series = Sequence[tuple[int, float]]  # (step, value), in the order reported


def _number(value: Any, default: float | None = None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def _best(series: Series, step: int, maximize: bool) -> float | None:
    values = [v for s, v in series if s <= step]
    if not values:
        return None
    return max(values) if maximize else min(values)


def _mean(series: Series, step: int) -> float | None:
    values = [v for s, v in series if s <= step]
    return sum(values) / len(values) if values else None


def _worse(a: float, b: float, maximize: bool) -> bool:
    """Is `a` strictly worse than `b`?"""
    return a < b if maximize else a > b


def stop_trial(
    policies: Sequence[Any] | None,
    subject: str,
    series: Mapping[str, Mapping[str, Series]],
    statuses: Mapping[str, str | None],
) -> TrialStop | None:
    """Whether `subject` (an active child) should stop now, on its siblings' reported values.

    `series[metric][run]` is each child's (step, value) series of that metric; `statuses` every
    child's status (the subject's included)."""
    for rule in policies or ():
        policy = getattr(rule, "policy", None)
        if getattr(rule, "kind", None) != "metric_early_stopping" or policy is None:
            continue
        metric = rule.metric
        by_run = series.get(metric, {})
        mine = list(by_run.get(subject, ()))
        interval = int(_number(getattr(policy, "evaluation_interval", None), 1) or 1)
        if not mine or interval < 1 or len(mine) % interval:
            continue
        if len(mine) < int(_number(getattr(policy, "min_interval", None), interval) or interval):
            continue
        step = mine[-1][0]
        maximize = _maximize(rule.optimization)
        best = _best(mine, step, maximize)
        if best is None:
            continue
        samples = int(_number(getattr(policy, "min_samples", None), 1) or 1)
        succeeded = [r for r, st in statuses.items() if r != subject and st == Status.SUCCEEDED]
        kind = policy.kind
        if kind == "median":
            averages = sorted(m for r in succeeded if (m := _mean(by_run.get(r, ()), step)) is not None)
            if len(averages) < samples or not averages:
                continue
            half = len(averages) // 2
            median = averages[half] if len(averages) % 2 else (averages[half - 1] + averages[half]) / 2
            if _worse(best, median, maximize):
                return TrialStop(
                    "EarlyStoppingMedian",
                    f"{metric} best {best:g} at step {step} is worse than the median {median:g} of "
                    f"{len(averages)} succeeded runs (median stopping policy)",
                )
        elif kind == "diff":
            bests = [b for r in succeeded if (b := _best(by_run.get(r, ()), step, maximize)) is not None]
            percent = _number(getattr(policy, "percent", None))
            if len(bests) < samples or not bests or percent is None:
                continue
            top = max(bests) if maximize else min(bests)
            gap = (top - best) if maximize else (best - top)
            if gap > abs(top) * percent / 100:
                return TrialStop(
                    "EarlyStoppingDiff",
                    f"{metric} best {best:g} at step {step} is more than {percent:g}% worse than the best "
                    f"{top:g} of {len(bests)} succeeded runs (diff stopping policy)",
                )
        elif kind == "truncation":
            percent = _number(getattr(policy, "percent", None))
            with_done = bool(getattr(policy, "include_succeeded", False))
            peers = [
                r
                for r, st in statuses.items()
                if r != subject and (is_active(st) or st is None or (with_done and st == Status.SUCCEEDED))
            ]
            peer_bests = [b for r in peers if (b := _best(by_run.get(r, ()), step, maximize)) is not None]
            if len(peer_bests) < samples or not peer_bests or percent is None:
                continue
            ranked = sorted([*peer_bests, best], reverse=maximize)  # best first
            cut = int(len(ranked) * percent / 100)
            if cut and ranked.index(best) >= len(ranked) - cut and _worse(best, ranked[0], maximize):
                return TrialStop(
                    "EarlyStoppingTruncation",
                    f"{metric} best {best:g} at step {step} ranks in the worst {percent:g}% of "
                    f"{len(ranked)} runs (truncation stopping policy)",
                )
    return None


def all_final(results: Sequence[Result]) -> bool:
    return all(is_done(r.status) for r in results)


__all__ = ["EarlyStop", "Result", "TrialStop", "all_final", "check", "stop_trial"]
