"""Matrix progress: which trials to create next, which to stop, and the matrix's own status.

Ask/tell over plain data: `progress(matrix, trials, seed)` reads the trials created so far (params,
status, metrics, and the bookkeeping `meta` this module put on them) and returns the next trial
requests, so the adapter only stores rows and a restart resumes from them. Every suggestion is a
function of (spec, history, seed): the same inputs give the same trials.

- grid, mapping: enumerated in spec order (grid capped by `numRuns`).
- random: each trial drawn with its own generator seeded by (seed, index), so a trial does not
  depend on how the batch was split.
- tpe: Optuna's TPE sampler (maintained, seedable, ask/tell with the history replayed into an
  in-memory study; running trials are told to it through `constant_liar`).
- bayes: the `bayesian-optimization` package, whose Gaussian process (Matern or RBF kernel) and
  acquisition functions (ucb with kappa, ei and poi with xi) are exactly the knobs of Polyaxon's
  `utilityFunction`. Optuna's own GP sampler would need PyTorch. The first `numInitialRuns`
  trials are its random warm-up; then one trial at a time, each after the previous finished.
- hyperband: the bracket arithmetic of Li et al. (successive halving of randomly drawn
  configurations, `eta`, the resource param growing per rung) is schedule bookkeeping rather
  than search, so it lives here; configurations are drawn like `random`. Optuna's
  HyperbandPruner prunes inside one process from intermediate reports, which runs do not give us.
- iterative: with a `tuner`, each iteration is the tuner's job (`MatrixStep.tuner` says which
  iteration to run it for; its suggestions come back as trials). Without one, each iteration
  draws `concurrency` random trials.

`concurrency` defaults to 1, as in Polyaxon. Early stopping stops active trials and creates no
more. The status, once nothing is left to run: the early-stopping verdict, else succeeded if a
trial succeeded, else stopped if one was stopped, else failed.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.scheduling import early_stopping
from reconciler.statuses import Status, is_active, is_done


class MatrixError(ValueError):
    """A matrix that cannot be progressed: unresolved fields, a space the algorithm cannot use."""


@dataclass(frozen=True)
class Trial:
    """A trial created earlier, as the tracking DB has it."""

    params: Mapping[str, Any]
    status: str | None = None  # None: requested, not created yet
    metrics: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialRequest:
    index: int  # position in the matrix; with the matrix run it is the trial's identity
    params: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def cause_id(self) -> str:
        return f"matrix:{self.index}"


@dataclass(frozen=True)
class MatrixStep:
    new: tuple[TrialRequest, ...] = ()
    stop: tuple[int, ...] = ()  # indices of active trials to stop
    status: str | None = None  # the matrix's own status once settled
    reason: str = ""
    message: str = ""
    tuner: int | None = None  # iterative: run the tuner for this iteration


# --- search spaces ---------------------------------------------------------------------------


def _resolved(value: Any, what: str) -> Any:
    if value is None or isinstance(value, str):
        raise MatrixError(f"{what} is not resolved: {value!r}")
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def _number(value: float) -> float | int:
    # Keep ints as ints (range 1:5:1) and drop float noise (0.1 * 3) from generated values.
    rounded = round(value, 12)
    return int(rounded) if float(rounded).is_integer() and abs(rounded) < 2**53 else rounded


def discrete_values(hp: Any, name: str) -> list[Any] | None:
    """The values of a discrete hyperparameter, None for a distribution."""
    kind = hp.kind
    v = hp.value
    if kind in ("choice",):
        return list(_resolved(v, f"{name}.value"))
    if kind == "pchoice":
        return [item[0] for item in _resolved(v, f"{name}.value")]
    if getattr(hp, "IS_DISTRIBUTION", False):
        return None
    v = _resolved(v, f"{name}.value")
    if kind == "range":
        count = max(0, math.ceil((v.stop - v.start) / v.step))
        return [_number(v.start + i * v.step) for i in range(count)]
    if kind == "linspace":
        if v.num == 1:
            return [_number(v.start)]
        return [_number(v.start + i * (v.stop - v.start) / (v.num - 1)) for i in range(v.num)]
    if kind == "logspace":
        base = v.base or 10
        lin = [v.start + i * (v.stop - v.start) / max(1, v.num - 1) for i in range(v.num)]
        return [_number(base**x) for x in lin]
    if kind == "geomspace":
        if v.num == 1:
            return [_number(v.start)]
        return [_number(v.start * (v.stop / v.start) ** (i / (v.num - 1))) for i in range(v.num)]
    if kind == "daterange":
        days = (v.stop - v.start).days
        return [_jsonable(v.start + dt.timedelta(days=d)) for d in range(0, days, v.step)]
    if kind == "datetimerange":
        out, current = [], v.start
        while current < v.stop:
            out.append(_jsonable(current))
            current += v.step
        return out
    raise MatrixError(f"{name}: unsupported hyperparameter kind {kind!r}")


def _draw(hp: Any, name: str, rng: random.Random) -> Any:
    values = discrete_values(hp, name)
    if values is not None:
        if not values:
            raise MatrixError(f"{name} has no values")
        if hp.kind == "pchoice":
            items = _resolved(hp.value, name)
            return rng.choices([i[0] for i in items], weights=[i[1] for i in items])[0]
        return rng.choice(values)
    v = _resolved(hp.value, f"{name}.value")
    size = getattr(v, "size", None)
    if size:
        return [_draw_one(hp.kind, v, rng) for _ in range(size)]
    return _draw_one(hp.kind, v, rng)


def _q(value: float, q: float) -> float | int:
    return _number(round(value / q) * q)


def _draw_one(kind: str, v: Any, rng: random.Random) -> Any:
    # Polyaxon follows hyperopt: log-distributions take their bounds in log space.
    if kind == "uniform":
        return rng.uniform(v.low, v.high)
    if kind == "quniform":
        return _q(rng.uniform(v.low, v.high), v.q)
    if kind == "loguniform":
        return math.exp(rng.uniform(v.low, v.high))
    if kind == "qloguniform":
        return _q(math.exp(rng.uniform(v.low, v.high)), v.q)
    if kind == "normal":
        return rng.gauss(v.loc, v.scale)
    if kind == "qnormal":
        return _q(rng.gauss(v.loc, v.scale), v.q)
    if kind == "lognormal":
        return math.exp(rng.gauss(v.loc, v.scale))
    if kind == "qlognormal":
        return _q(math.exp(rng.gauss(v.loc, v.scale)), v.q)
    raise MatrixError(f"unsupported distribution {kind!r}")


def _space(matrix: Any) -> dict[str, Any]:
    params = matrix.params
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise MatrixError("the matrix params are not resolved")
    return params


def random_params(matrix: Any, seed: int, *key: object) -> dict[str, Any]:
    """One random point of the space, from a generator seeded by (seed, *key)."""
    rng = random.Random(":".join(str(k) for k in (seed, *key)))
    return {name: _draw(hp, name, rng) for name, hp in _space(matrix).items()}


def _int(value: Any, what: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise MatrixError(f"{what} is not resolved to an integer: {value!r}")
    return value


def _trial_seed(seed: int, count: int) -> int:
    # Library samplers are rebuilt on every call; seeding them with the history length makes
    # each call draw fresh random numbers while staying a function of (seed, history).
    return (seed * 1_000_003 + count) % (2**32)


# --- per-kind planning -----------------------------------------------------------------------


@dataclass
class _Plan:
    candidates: list[TrialRequest]  # in order, before the concurrency cap
    exhausted: bool  # nothing will ever be suggested after these
    total: int  # the number of trials the matrix will have, for failure percentages
    tuner: int | None = None


def _grid(matrix: Any, n: int) -> _Plan:
    space = _space(matrix)
    names = list(space)
    axes = [discrete_values(space[k], k) or [] for k in names]
    size = math.prod(len(a) for a in axes) if axes else 0
    cap = _int(matrix.num_runs, "numRuns", size)
    total = min(size, cap)
    points = itertools.islice(itertools.product(*axes), n, total)
    cands = [TrialRequest(n + i, dict(zip(names, p, strict=True))) for i, p in enumerate(points)]
    return _Plan(cands, True, total)


def _mapping(matrix: Any, n: int) -> _Plan:
    values = matrix.values
    if not isinstance(values, list):
        raise MatrixError("the mapping values are not resolved")
    return _Plan([TrialRequest(i, dict(v)) for i, v in enumerate(values) if i >= n], True, len(values))


def _random(matrix: Any, n: int, seed: int) -> _Plan:
    total = _int(matrix.num_runs, "numRuns")
    return _Plan([TrialRequest(i, random_params(matrix, seed, i)) for i in range(n, total)], True, total)


def _metric(matrix: Any) -> tuple[str, bool]:
    metric = matrix.metric
    if metric is None:
        raise MatrixError(f"a {matrix.kind} matrix needs a metric")
    return metric.name, (metric.optimization or "maximize") == "maximize"


def _score(trial: Trial, metric: str) -> float | None:
    value = trial.metrics.get(metric)
    if trial.status != Status.SUCCEEDED or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@functools.cache
def _quiet_optuna() -> None:
    """Optuna sets its own logger to INFO when first used: lowered once per process, not per matrix."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


@functools.cache
def _quiet_bayes_opt() -> None:
    """bayes_opt flags non-float params as experimental. The filter is installed once per process:
    `warnings.catch_warnings()` swaps the global filter list, which races between worker threads."""
    warnings.filterwarnings("ignore", module=r"bayes_opt(\..*)?$")


def _tpe(matrix: Any, trials: Sequence[Trial], seed: int, slots: int) -> _Plan:
    import optuna  # imported here: the daemon pays for it only when a tpe matrix runs

    _quiet_optuna()
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

    space = _space(matrix)
    total = _int(matrix.num_runs, "numRuns")
    metric, maximize = _metric(matrix)
    dists: dict[str, BaseDistribution] = {}
    for name, hp in space.items():
        values = discrete_values(hp, name)
        if values is not None:
            dists[name] = CategoricalDistribution(values)
            continue
        v = _resolved(hp.value, name)
        if hp.kind == "uniform":
            dists[name] = FloatDistribution(v.low, v.high)
        elif hp.kind == "quniform":
            dists[name] = FloatDistribution(v.low, v.high, step=v.q)
        elif hp.kind == "loguniform":
            dists[name] = FloatDistribution(math.exp(v.low), math.exp(v.high), log=True)
        else:
            raise MatrixError(f"{name}: tpe supports uniform, quniform, loguniform and discrete values, not {hp.kind}")
    sampler = optuna.samplers.TPESampler(seed=_trial_seed(seed, len(trials)), constant_liar=True)
    study = optuna.create_study(direction="maximize" if maximize else "minimize", sampler=sampler)
    for t in trials:
        score = _score(t, metric)
        if score is not None:
            state, value = optuna.trial.TrialState.COMPLETE, score
        elif is_done(t.status):
            state, value = optuna.trial.TrialState.FAIL, None
        else:
            state, value = optuna.trial.TrialState.RUNNING, None
        params = {k: t.params[k] for k in dists if k in t.params}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value, state=state))
    cands: list[TrialRequest] = []
    for i in range(len(trials), min(total, len(trials) + slots)):
        asked = study.ask(dists)
        cands.append(TrialRequest(i, {k: _number(v) if isinstance(v, float) else v for k, v in asked.params.items()}))
    return _Plan(cands, len(trials) + len(cands) >= total, total)


def _bayes(matrix: Any, trials: Sequence[Trial], seed: int) -> _Plan:
    initial = _int(matrix.num_initial_runs, "numInitialRuns")
    iterations = _int(matrix.max_iterations, "maxIterations")
    total = initial + iterations
    n = len(trials)
    if n >= total:
        return _Plan([], True, total)
    if n >= initial and any(not is_done(t.status) for t in trials):
        return _Plan([], False, total)  # the GP waits for the previous point's result
    from bayes_opt import BayesianOptimization, acquisition

    space = _space(matrix)
    metric, maximize = _metric(matrix)
    bounds: dict[str, Any] = {}
    snaps: dict[str, list[Any]] = {}
    for name, hp in space.items():
        values = discrete_values(hp, name)
        if values is None:
            v = _resolved(hp.value, name)
            bounds[name] = (float(v.low), float(v.high))
        elif all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
            # Numeric discrete values are searched as an interval and snapped to the nearest.
            snaps[name] = sorted(values)
            bounds[name] = (float(min(values)), float(max(values)))
        else:
            bounds[name] = tuple(values)
    utility = matrix.utility_function
    kind = (utility.acquisition_function if utility else None) or "ucb"
    acq: Any
    if kind == "ucb":
        acq = acquisition.UpperConfidenceBound(kappa=(utility.kappa if utility else None) or 2.576)
    elif kind == "ei":
        acq = acquisition.ExpectedImprovement(xi=utility.eps if utility and utility.eps is not None else 0.0)
    else:
        acq = acquisition.ProbabilityOfImprovement(xi=utility.eps if utility and utility.eps is not None else 0.0)
    _quiet_bayes_opt()
    optimizer = BayesianOptimization(
        f=None,
        pbounds=bounds,
        acquisition_function=acq,
        random_state=_trial_seed(seed, 0 if n < initial else n),
        verbose=0,
    )
    gp = utility.gaussian_process if utility else None
    if gp is not None:
        from sklearn.gaussian_process.kernels import RBF, Matern  # type: ignore[import-untyped]

        length = gp.length_scale or 1.0
        kernel = RBF(length_scale=length) if gp.kernel == "rbf" else Matern(length_scale=length, nu=gp.nu or 1.5)
        optimizer._gp.set_params(kernel=kernel, n_restarts_optimizer=gp.num_restarts_optimizer or 0)
    if n < initial:
        # Warm-up: the optimizer's own random points, the i-th of its seeded sequence.
        cands = []
        for i in range(initial):
            point = optimizer.suggest()
            if i >= n:
                cands.append(TrialRequest(i, _bayes_point(point, snaps)))
        return _Plan(cands, False, total)
    for t in trials:
        score = _score(t, metric)
        if score is not None:
            optimizer.register({k: t.params[k] for k in bounds}, score if maximize else -score)
    if not optimizer.space.target.size:
        raise MatrixError("every initial bayes trial failed or reported no metric; nothing to model")
    point = optimizer.suggest()
    return _Plan([TrialRequest(n, _bayes_point(point, snaps))], n + 1 >= total, total)


def _bayes_point(point: Mapping[str, Any], snaps: Mapping[str, list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in point.items():
        value = v.item() if hasattr(v, "item") else v
        if k in snaps:
            value = min(snaps[k], key=lambda x: (abs(x - value), x))
        out[k] = _number(value) if isinstance(value, float) else value
    return out


def hyperband_brackets(max_iterations: int, eta: float) -> list[list[tuple[int, float]]]:
    """[(configs, resource) per rung] per bracket, most exploratory bracket first."""
    if eta <= 1:
        raise MatrixError("hyperband eta must be greater than 1")
    s_max = math.floor(math.log(max_iterations) / math.log(eta) + 1e-9)
    budget = (s_max + 1) * max_iterations
    brackets = []
    for s in range(s_max, -1, -1):
        n = math.ceil(budget / max_iterations * eta**s / (s + 1))
        r = max_iterations * eta ** (-s)
        brackets.append([(math.floor(n * eta ** (-i)), r * eta**i) for i in range(s + 1)])
    return brackets


def _hyperband(matrix: Any, trials: Sequence[Trial], seed: int) -> _Plan:
    max_iter = _int(matrix.max_iterations, "maxIterations")
    eta = matrix.eta if isinstance(matrix.eta, (int, float)) else 3
    if matrix.resource is None:
        raise MatrixError("a hyperband matrix needs a resource")
    metric, maximize = _metric(matrix)
    brackets = hyperband_brackets(max_iter, float(eta))
    total = sum(n for rungs in brackets for n, _ in rungs)
    by_rung: dict[tuple[int, int], list[tuple[int, Trial]]] = {}
    for i, t in enumerate(trials):
        by_rung.setdefault((int(t.meta["bracket"]), int(t.meta["rung"])), []).append((i, t))
    resource, as_int = matrix.resource.name, matrix.resource.type != "float"
    n = len(trials)
    for b, rungs in enumerate(brackets):
        for r, (count, amount) in enumerate(rungs):
            have = by_rung.get((b, r), [])
            value = round(amount) if as_int else amount
            if len(have) >= count:
                if any(not is_done(t.status) for _, t in have):
                    return _Plan([], False, total)  # the rung must finish before the next one
                continue
            configs: list[tuple[int, dict[str, Any], int | None]]
            if r == 0:
                configs = [(j, random_params(matrix, seed, "hyperband", b, j), None) for j in range(len(have), count)]
            else:
                previous = by_rung.get((b, r - 1), [])
                ranked = sorted(
                    ((s, idx, t) for idx, t in previous if (s := _score(t, metric)) is not None),
                    key=lambda x: (-x[0] if maximize else x[0], x[1]),
                )
                promoted = ranked[:count]
                if len(promoted) < count:  # failed trials leave fewer to promote: the rung is smaller
                    count = len(promoted)
                configs = [
                    (int(t.meta["config"]), {k: v for k, v in t.params.items() if k != resource}, idx)
                    for _, idx, t in promoted[len(have) :]
                ]
            cands = []
            for offset, (config, params, parent) in enumerate(configs):
                meta: dict[str, Any] = {"bracket": b, "rung": r, "config": config}
                if parent is not None and matrix.resume:
                    meta["resume_from"] = parent
                cands.append(TrialRequest(n + offset, {**params, resource: value}, meta))
            if cands:
                return _Plan(cands, False, total)
    return _Plan([], True, total)


def _iterative(matrix: Any, trials: Sequence[Trial], seed: int, concurrency: int) -> _Plan:
    iterations = _int(matrix.max_iterations, "maxIterations")
    done_iterations = {int(t.meta.get("iteration", 0)) for t in trials}
    current = max(done_iterations) if trials else -1
    if trials and any(not is_done(t.status) for t in trials):
        return _Plan([], False, len(trials))
    nxt = current + 1
    if nxt >= iterations:
        return _Plan([], True, len(trials))
    if matrix.tuner is not None:
        return _Plan([], False, len(trials), tuner=nxt)
    cands = [
        TrialRequest(len(trials) + j, random_params(matrix, seed, "iteration", nxt, j), {"iteration": nxt})
        for j in range(concurrency)
    ]
    return _Plan(cands, nxt + 1 >= iterations, iterations * concurrency)


# --- the step --------------------------------------------------------------------------------


def _settled_status(trials: Sequence[Trial]) -> tuple[str, str, str]:
    succeeded = sum(1 for t in trials if t.status == Status.SUCCEEDED)
    stopped = sum(1 for t in trials if t.status == Status.STOPPED)
    summary = f"{succeeded} of {len(trials)} trials succeeded"
    if succeeded or not trials:
        return Status.SUCCEEDED, "Succeeded", summary
    if stopped:
        return Status.STOPPED, "TrialsStopped", summary
    return Status.FAILED, "TrialsFailed", summary


def progress(matrix: Any, trials: Sequence[Trial], seed: int) -> MatrixStep:
    """The next step of a matrix run given its `trials` (in creation order) and its seed."""
    concurrency = _int(getattr(matrix, "concurrency", None), "concurrency", 1)
    active = [i for i, t in enumerate(trials) if is_active(t.status) or t.status is None]
    slots = max(0, concurrency - len(active))
    kind = matrix.kind
    n = len(trials)
    if kind == "grid":
        plan = _grid(matrix, n)
    elif kind == "mapping":
        plan = _mapping(matrix, n)
    elif kind == "random":
        plan = _random(matrix, n, seed)
    elif kind == "tpe":
        plan = _tpe(matrix, trials, seed, slots)
    elif kind == "bayes":
        plan = _bayes(matrix, trials, seed)
    elif kind == "hyperband":
        plan = _hyperband(matrix, trials, seed)
    elif kind == "iterative":
        plan = _iterative(matrix, trials, seed, concurrency)
    else:
        raise MatrixError(f"unknown matrix kind {kind!r}")

    results = [early_stopping.Result(t.status, dict(t.metrics)) for t in trials]
    verdict = early_stopping.check(matrix.early_stopping, results, max(plan.total, n))
    if verdict is not None:
        if active:
            return MatrixStep(stop=tuple(active))
        return MatrixStep(status=verdict.status, reason=verdict.reason, message=verdict.message)

    new = tuple(plan.candidates[:slots])
    tuner = plan.tuner if not active else None
    if new or active or tuner is not None:
        return MatrixStep(new=new, tuner=tuner)
    # Nothing running and nothing to start: the search is over (or ended early, as when
    # failures leave a hyperband rung with nothing to promote).
    status, reason, message = _settled_status(trials)
    return MatrixStep(status=status, reason=reason, message=message)


def suggest(matrix: Any, history: Sequence[Trial], seed: int) -> list[dict[str, Any]]:
    """The params of the trials to create now."""
    return [r.params for r in progress(matrix, history, seed).new]


def matrix_status(matrix: Any, trials: Sequence[Trial], seed: int = 0) -> MatrixStep:
    """The matrix's status (None while it still runs) with the reason and message."""
    step = progress(matrix, trials, seed)
    return MatrixStep(status=step.status, reason=step.reason, message=step.message)


def effective_seed(matrix: Any, fallback: int) -> int:
    """The spec's seed, or a stable fallback (derived by the caller from the matrix run's id)."""
    seed = getattr(matrix, "seed", None)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else fallback


__all__ = [
    "MatrixError",
    "MatrixStep",
    "Trial",
    "TrialRequest",
    "discrete_values",
    "effective_seed",
    "hyperband_brackets",
    "matrix_status",
    "progress",
    "random_params",
    "suggest",
]
