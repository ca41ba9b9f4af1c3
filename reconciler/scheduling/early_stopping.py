"""Early stopping of a DAG or a matrix, from the results its children reported so far.

Both kinds stop the same way: on a metric that reached its target (the search is done: the
parent succeeds) or on a share of failed children (the parent fails). Polyaxon's per-trial
stopping policies (median, truncation, diff) need intermediate metrics streamed during a run,
which the reconciler does not see; only their parent rule (metric and value) is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.statuses import FAILURES, Status, is_done


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


def all_final(results: Sequence[Result]) -> bool:
    return all(is_done(r.status) for r in results)


__all__ = ["EarlyStop", "Result", "all_final", "check"]
