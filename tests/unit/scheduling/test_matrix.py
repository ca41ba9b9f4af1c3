"""Matrix trial generation: each kind with a seed, determinism, concurrency, early stopping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reconciler.scheduling.matrix import (
    MatrixError,
    Trial,
    discrete_values,
    hyperband_brackets,
    matrix_status,
    progress,
    suggest,
)
from reconciler.spec.matrix import TPE, Bayes, GridSearch, Hyperband, Iterative, Mapping, RandomSearch


def grid(**kw: Any) -> GridSearch:
    return GridSearch.model_validate({"kind": "grid", **kw})


def run_all(
    matrix: Any, seed: int, outcome: Callable[[dict[str, Any]], Trial], limit: int = 500
) -> tuple[list[Trial], str]:
    """Drive a matrix to the end: every requested trial finishes at once with `outcome(params)`."""
    trials: list[Trial] = []
    for _ in range(limit):
        step = progress(matrix, trials, seed)
        if step.status:
            return trials, step.status
        assert step.new, "a matrix with nothing running must start something or settle"
        for request in step.new:
            assert request.index == len(trials)
            done = outcome(request.params)
            trials.append(Trial(request.params, done.status, done.metrics, request.meta))
    raise AssertionError("the matrix did not settle")


def ok(metric: Callable[[dict[str, Any]], float]) -> Callable[[dict[str, Any]], Trial]:
    return lambda p: Trial(p, "succeeded", {"loss": metric(p)})


def test_discrete_spaces() -> None:
    m = grid(
        params={
            "r": {"kind": "range", "value": [0, 1, 0.25]},
            "l": {"kind": "linspace", "value": "1:2:3"},
            "g": {"kind": "logspace", "value": [0, 2, 3]},
            "d": {"kind": "daterange", "value": ["2024-01-01", "2024-01-03", 1]},
        }
    )
    p = m.params
    assert isinstance(p, dict)
    assert discrete_values(p["r"], "r") == [0, 0.25, 0.5, 0.75]
    assert discrete_values(p["l"], "l") == [1, 1.5, 2]
    assert discrete_values(p["g"], "g") == [1, 10, 100]
    assert discrete_values(p["d"], "d") == ["2024-01-01", "2024-01-02"]


def test_grid_is_the_cartesian_product_in_order_capped_by_num_runs() -> None:
    m = grid(params={"a": {"kind": "choice", "value": [1, 2, 3]}, "b": {"kind": "choice", "value": ["x", "y"]}})
    trials, status = run_all(m, 0, ok(lambda p: 0))
    assert [t.params for t in trials][:3] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}]
    assert len(trials) == 6 and status == "succeeded"
    capped = grid(params={"a": {"kind": "choice", "value": [1, 2, 3]}}, numRuns=2)
    assert len(run_all(capped, 0, ok(lambda p: 0))[0]) == 2


def test_concurrency_caps_the_active_trials() -> None:
    m = grid(params={"a": {"kind": "choice", "value": [1, 2, 3, 4, 5]}}, concurrency=2)
    assert suggest(m, [], 0) == [{"a": 1}, {"a": 2}]
    running = [Trial({"a": 1}, "running"), Trial({"a": 2}, "succeeded")]
    assert suggest(m, running, 0) == [{"a": 3}]
    assert suggest(m, [Trial({"a": 1}, "running"), Trial({"a": 2}, None)], 0) == []
    default = grid(params={"a": {"kind": "choice", "value": [1, 2]}})
    assert len(suggest(default, [], 0)) == 1  # concurrency defaults to 1


def test_mapping_in_order() -> None:
    m = Mapping.model_validate({"kind": "mapping", "values": [{"a": 1}, {"a": 2}], "concurrency": 5})
    assert suggest(m, [], 0) == [{"a": 1}, {"a": 2}]
    assert matrix_status(m, [Trial({"a": 1}, "failed"), Trial({"a": 2}, "failed")]).status == "failed"


RANDOM_SPACE = {
    "u": {"kind": "uniform", "value": [0, 1]},
    "qu": {"kind": "quniform", "value": [0, 10, 2]},
    "lu": {"kind": "loguniform", "value": [-3, 0]},
    "n": {"kind": "normal", "value": [0, 1]},
    "ln": {"kind": "lognormal", "value": [0, 0.5]},
    "c": {"kind": "choice", "value": ["a", "b"]},
    "pc": {"kind": "pchoice", "value": [["x", 0.1], ["y", 0.9]]},
    "r": {"kind": "range", "value": [1, 4, 1]},
}


def test_random_is_deterministic_for_a_seed_and_in_range() -> None:
    m = RandomSearch.model_validate({"kind": "random", "params": RANDOM_SPACE, "numRuns": 20, "concurrency": 20})
    a = suggest(m, [], 42)
    assert a == suggest(m, [], 42)
    assert a != suggest(m, [], 43)
    assert len(a) == 20
    for p in a:
        assert 0 <= p["u"] <= 1
        assert p["qu"] in (0, 2, 4, 6, 8, 10)
        assert 0.0497 <= p["lu"] <= 1  # exp(-3) .. exp(0): bounds are in log space
        assert p["ln"] > 0
        assert p["c"] in ("a", "b") and p["r"] in (1, 2, 3)
    assert sum(p["pc"] == "y" for p in a) > 10
    # A trial does not depend on how the batch was split.
    one_at_a_time = RandomSearch.model_validate({"kind": "random", "params": RANDOM_SPACE, "numRuns": 20})
    trials, _ = run_all(one_at_a_time, 42, ok(lambda p: 0))
    assert [t.params for t in trials] == a


def test_tpe_with_optuna_is_deterministic_and_improves() -> None:
    m = TPE.model_validate(
        {
            "kind": "tpe",
            "params": {"x": {"kind": "uniform", "value": [-5, 5]}, "k": {"kind": "choice", "value": [1, 2]}},
            "metric": {"name": "loss", "optimization": "minimize"},
            "numRuns": 30,
        }
    )

    def objective(p: dict[str, Any]) -> float:
        return float((p["x"] - 2) ** 2 + (0 if p["k"] == 2 else 3))

    first, status = run_all(m, 7, ok(objective))
    second, _ = run_all(m, 7, ok(objective))
    assert [t.params for t in first] == [t.params for t in second]
    assert status == "succeeded" and len(first) == 30
    best = min(objective(t.params) for t in first)
    assert best < 0.5
    other, _ = run_all(m, 8, ok(objective))
    assert [t.params for t in other] != [t.params for t in first]


def test_tpe_rejects_distributions_optuna_cannot_sample() -> None:
    m = TPE.model_validate(
        {"kind": "tpe", "params": {"x": {"kind": "normal", "value": [0, 1]}}, "metric": {"name": "l"}, "numRuns": 3}
    )
    with pytest.raises(MatrixError, match="tpe supports"):
        suggest(m, [], 0)


def test_bayes_warm_up_then_one_at_a_time_deterministic() -> None:
    m = Bayes.model_validate(
        {
            "kind": "bayes",
            "params": {"x": {"kind": "uniform", "value": [0, 4]}, "n": {"kind": "choice", "value": [1, 2, 3]}},
            "metric": {"name": "loss", "optimization": "minimize"},
            "numInitialRuns": 4,
            "maxIterations": 6,
            "concurrency": 4,
            "utilityFunction": {"acquisitionFunction": "ei", "eps": 0.01, "gaussianProcess": {"kernel": "matern"}},
        }
    )
    warm = suggest(m, [], 3)
    assert len(warm) == 4 and warm == suggest(m, [], 3)
    assert all(p["n"] in (1, 2, 3) for p in warm)

    def objective(p: dict[str, Any]) -> float:
        return float((p["x"] - 1) ** 2 + p["n"])

    a, status = run_all(m, 3, ok(objective))
    b, _ = run_all(m, 3, ok(objective))
    assert status == "succeeded" and len(a) == 10
    assert [t.params for t in a] == [t.params for t in b]
    # After warm-up the GP waits for each result before the next point.
    pending = [Trial(t.params, "succeeded", {"loss": 1.0}) for t in a[:4]] + [Trial(a[4].params, "running")]
    assert suggest(m, pending, 3) == []


def test_hyperband_brackets_match_the_paper() -> None:
    # Li et al., R=81, eta=3: the table of (n_i, r_i).
    b = hyperband_brackets(81, 3)
    assert [(n, round(r)) for n, r in b[0]] == [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)]
    assert [(n, round(r)) for n, r in b[-1]] == [(5, 81)]
    assert len(b) == 5


def test_hyperband_promotes_the_best_with_more_resource() -> None:
    m = Hyperband.model_validate(
        {
            "kind": "hyperband",
            "params": {"lr": {"kind": "uniform", "value": [0, 1]}},
            "maxIterations": 9,
            "eta": 3,
            "resource": {"name": "epochs", "type": "int"},
            "metric": {"name": "loss", "optimization": "minimize"},
            "resume": True,
            "seed": 5,
            "concurrency": 100,
        }
    )
    trials, status = run_all(m, 5, ok(lambda p: abs(p["lr"] - 0.3) / p["epochs"]))
    assert status == "succeeded"
    first_bracket = [t for t in trials if t.meta["bracket"] == 0]
    rungs = [[t for t in first_bracket if t.meta["rung"] == r] for r in range(3)]
    assert [len(r) for r in rungs] == [9, 3, 1]
    assert {t.params["epochs"] for t in rungs[0]} == {1} and rungs[2][0].params["epochs"] == 9
    best3 = sorted(rungs[0], key=lambda t: abs(t.params["lr"] - 0.3))[:3]
    assert {t.params["lr"] for t in rungs[1]} == {t.params["lr"] for t in best3}
    assert all("resume_from" in t.meta for t in rungs[1])
    again, _ = run_all(m, 5, ok(lambda p: abs(p["lr"] - 0.3) / p["epochs"]))
    assert [t.params for t in again] == [t.params for t in trials]


def test_iterative_without_tuner_draws_batches_and_with_tuner_asks_for_it() -> None:
    m = Iterative.model_validate(
        {
            "kind": "iterative",
            "params": {"x": {"kind": "uniform", "value": [0, 1]}},
            "maxIterations": 3,
            "concurrency": 2,
        }
    )
    trials, status = run_all(m, 1, ok(lambda p: p["x"]))
    assert status == "succeeded"
    assert len(trials) == 6 and [t.meta["iteration"] for t in trials] == [0, 0, 1, 1, 2, 2]
    tuned = Iterative.model_validate({"kind": "iterative", "maxIterations": 2, "tuner": {"hubRef": "my-tuner"}})
    assert progress(tuned, [], 0).tuner == 0
    done0 = [Trial({"x": 1}, "succeeded", meta={"iteration": 0})]
    assert progress(tuned, done0, 0).tuner == 1
    assert progress(tuned, [*done0, Trial({"x": 2}, "running", meta={"iteration": 1})], 0).tuner is None


def test_early_stopping_on_metric_and_on_failures() -> None:
    space = {"a": {"kind": "choice", "value": list(range(10))}}
    m = grid(
        params=space,
        concurrency=2,
        earlyStopping=[{"kind": "metric_early_stopping", "metric": "loss", "value": 0.1, "optimization": "minimize"}],
    )
    trials = [Trial({"a": 0}, "succeeded", {"loss": 0.05}), Trial({"a": 1}, "running")]
    step = progress(m, trials, 0)
    assert step.stop == (1,) and step.new == ()
    trials[1] = Trial({"a": 1}, "stopped")
    settled = matrix_status(m, trials)
    assert (settled.status, settled.reason) == ("succeeded", "EarlyStoppingMetric")

    f = grid(params=space, earlyStopping=[{"kind": "failure_early_stopping", "percent": 20}])
    failing = [Trial({"a": 0}, "failed"), Trial({"a": 1}, "failed")]
    st = matrix_status(f, failing)
    assert (st.status, st.reason) == ("failed", "EarlyStoppingFailures")
    assert matrix_status(f, failing[:1]).status is None


def test_status_while_running_and_when_all_stopped() -> None:
    m = grid(params={"a": {"kind": "choice", "value": [1, 2]}}, concurrency=2)
    assert matrix_status(m, [Trial({"a": 1}, "succeeded"), Trial({"a": 2}, "running")]).status is None
    assert matrix_status(m, [Trial({"a": 1}, "stopped"), Trial({"a": 2}, "failed")]).status == "stopped"


def test_the_fallback_seed_fits_the_stored_column() -> None:
    """`orchestrated_run.seed` is a signed 32-bit INTEGER on PostgreSQL: a seed derived from a run
    name whose hash starts above 0x7fffffff used to fail the matrix's first step there."""
    from reconciler.orchestration.specs import fallback_seed

    names = [f"sweep-{i}" for i in range(2000)]
    assert all(0 <= fallback_seed(n) < 2**31 for n in names)
    assert fallback_seed("sweep-0") == fallback_seed("sweep-0")
    assert len({fallback_seed(n) for n in names}) > 1990
