"""Polyaxon 2.18's rules of four classes, one row per rule, read from its models and validators.

The classes (issue 17): strict scalar types, key casing, param references, event refs across
files. Each table here is used three times:

- tests/unit/spec/test_rule_tables.py: our validator gives the verdicts of the table;
- tests/oracle/test_rule_tables.py: Polyaxon gives them too (so the table is Polyaxon's behaviour,
  not our belief about it), and the table covers every field of the class in Polyaxon's models;
- tests/oracle/test_differential.py: Hypothesis draws rows and compares the two directly.

Where we are stricter on purpose, the row says so (`ours`) and tests/oracle/KNOWN_DIFFERENCES.md
says why.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

HOLE = "<HOLE>"


def fill(doc: Any, value: Any) -> Any:
    """`doc` with every HOLE replaced by `value`."""
    if isinstance(doc, str) and doc == HOLE:
        return value
    if isinstance(doc, dict):
        return {k: fill(v, value) for k, v in doc.items()}
    if isinstance(doc, list):
        return [fill(v, value) for v in doc]
    return doc


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(doc: Any) -> str:
    """YAML as a person writes it: no anchors or aliases for repeated parts."""
    return yaml.dump(doc, Dumper=_NoAliases, sort_keys=False)


def snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m.group(1).lower(), key)


# --- documents ----------------------------------------------------------------------------------

JOB: dict[str, Any] = {"kind": "job", "container": {"image": "busybox"}}


def component(**fields: Any) -> dict[str, Any]:
    return {"kind": "component", "run": copy.deepcopy(JOB), **fields}


def run(run_section: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"kind": "component", "run": run_section, **fields}


def operation(**fields: Any) -> dict[str, Any]:
    """An operation of a component with one optional float input, `lr`."""
    return {
        "kind": "operation",
        "component": {
            "inputs": [{"name": "lr", "type": "float", "isOptional": True, "value": 0.1}],
            "run": copy.deepcopy(JOB),
        },
        **fields,
    }


CHOICE = {"lr": {"kind": "choice", "value": [0.1, 0.2]}}
METRIC = {"name": "loss", "optimization": "minimize"}
UNIFORM = {"lr": {"kind": "uniform", "value": [0, 1]}}


def matrix(kind: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, dict[str, Any]] = {
        "grid": {"params": CHOICE},
        "random": {"params": CHOICE, "numRuns": 2},
        "mapping": {"values": [{"lr": 0.1}]},
        "tpe": {"params": CHOICE, "metric": METRIC, "numRuns": 2},
        "iterative": {"params": CHOICE, "maxIterations": 2},
        "hyperband": {
            "params": CHOICE,
            "maxIterations": 10,
            "eta": 3,
            "resource": {"name": "steps", "type": "int"},
            "metric": METRIC,
        },
        "bayes": {"params": UNIFORM, "metric": METRIC, "numInitialRuns": 2, "maxIterations": 3},
    }
    return operation(matrix={"kind": kind, **base[kind], **fields})


def hp(kind: str, value: Any) -> dict[str, Any]:
    return matrix("random", params={"lr": {"kind": kind, "value": value}})


def early_stopping(entry: dict[str, Any]) -> dict[str, Any]:
    return matrix("random", earlyStopping=[entry])


def policy(entry: dict[str, Any]) -> dict[str, Any]:
    return early_stopping(
        {"kind": "metric_early_stopping", "metric": "loss", "value": 0.1, "optimization": "minimize", "policy": entry}
    )


def init(entry: dict[str, Any]) -> dict[str, Any]:
    return run({"kind": "job", "container": {"image": "busybox"}, "init": [entry]})


def validation(entry: dict[str, Any]) -> dict[str, Any]:
    return component(inputs=[{"name": "lr", "type": "float", "isOptional": True, "validation": entry}])


def join(**fields: Any) -> dict[str, Any]:
    return operation(joins=[{"query": "status: succeeded", "params": {"lrs": {"value": "outputs.lr"}}, **fields}])


# --- 1. strict scalar types -----------------------------------------------------------------------

# The values every numeric field is tried with, and what each kind of field makes of them
# (V valid, I invalid), in this order.
VALUES: tuple[Any, ...] = (3, 3.0, 2.5, "3", "2.5", "{{ n }}", True, 0, -1, "x")
KINDS = {
    # StrictInt: no floats, no quoted numbers, no booleans.
    "StrictInt": "VIIIIIIVVI",
    "StrictInt | Ref": "VIIIIVIVVI",
    # Lax int: 3.0, "3" and true convert; 2.5 does not.
    "int": "VVIVIIVVVI",
    "int | Ref": "VVIVIVVVVI",
    "int > 0 (checked by the model)": "VVIVIIVIVI",
    "PositiveInt": "VVIVIIVIII",
    "PositiveInt | Ref": "VVIVIVVIII",
    # numRuns, maxIterations, concurrency of grid/random/tpe/iterative: `v < 1` is evaluated
    # before conversion, so every string fails there, references included.
    "PositiveInt, compared with 1 before conversion": "VVIIIIVIII",
    "float": "VVVVVIVVVI",
    "float | Ref": "VVVVVVVVVI",
    "float >= 0 | Ref": "VVVVVVVVII",
    "float, below the upper bound": "VVVVVIVVVI",
    "StrictInt | StrictFloat | float, > 0": "VVVVVIVIVI",
    "StrictFloat | Optimization": "VVVIIIIVVI",
    "timedelta | Ref": "VVVIIVVVVI",
    "timedelta, not zero (checked by the model)": "VVVIIIVIVI",
    "resources.cpu (quantity or range)": "VVVVVIIVII",
    "resources.gpu (count or range)": "VIIVIIIVII",
}


@dataclass(frozen=True)
class ScalarRule:
    field: str  # Polyaxon's model and field, e.g. V1Termination.max_retries
    kind: str  # a key of KINDS: what Polyaxon accepts
    doc: dict[str, Any]  # a valid document with HOLE where the value goes
    ours: str | None = None  # our verdicts where we are stricter on purpose (KNOWN_DIFFERENCES.md)

    @property
    def polyaxon(self) -> str:
        return KINDS[self.kind]

    @property
    def expected(self) -> str:
        return self.ours or self.polyaxon

    def cases(self) -> list[tuple[Any, dict[str, Any]]]:
        return [(value, fill(self.doc, value)) for value in VALUES]


def _hp_rules(model: str, kind: str, base: dict[str, Any], kinds: dict[str, str]) -> list[ScalarRule]:
    return [ScalarRule(f"{model}.{key}", k, hp(kind, {**base, key: HOLE})) for key, k in kinds.items()]


_LOW_HIGH = {"low": "float", "high": "float", "size": "int"}  # distributions: any order
_LOC_SCALE = {"loc": "float", "scale": "float", "size": "int"}
_MAX_RUNS_OURS = "VIIIIVIIII"  # maxRuns must be at least 1 here (KNOWN_DIFFERENCES.md)

SCALAR_RULES: list[ScalarRule] = [
    ScalarRule("V1Polyaxonfile.version", "float", component(version=HOLE)),
    ScalarRule("V1Polyaxonfile.cost", "float | Ref", component(cost=HOLE)),
    ScalarRule("V1Polyaxonfile.ports", "StrictInt", run({"kind": "service"}, ports=[HOLE])),
    ScalarRule("V1Polyaxonfile.resources", "resources.cpu (quantity or range)", component(resources={"cpu": HOLE})),
    ScalarRule("V1Polyaxonfile.resources[gpu]", "resources.gpu (count or range)", component(resources={"gpu": HOLE})),
    ScalarRule("V1Cache.ttl", "StrictInt | Ref", component(cache={"ttl": HOLE})),
    ScalarRule("V1Termination.max_retries", "StrictInt | Ref", component(termination={"maxRetries": HOLE})),
    ScalarRule("V1Termination.ttl", "StrictInt | Ref", component(termination={"ttl": HOLE})),
    ScalarRule("V1Termination.timeout", "StrictInt | Ref", component(termination={"timeout": HOLE})),
    ScalarRule("V1Culling.timeout", "int", component(termination={"culling": {"timeout": HOLE}})),
    ScalarRule(
        "V1PolyaxonSidecarContainer.sleep_interval",
        "StrictInt | Ref",
        component(plugins={"sidecar": {"sleepInterval": HOLE}}),
    ),
    ScalarRule(
        "V1PolyaxonSidecarContainer.sync_interval",
        "StrictInt | Ref",
        component(plugins={"sidecar": {"syncInterval": HOLE}}),
    ),
    ScalarRule(
        "V1CronSchedule.max_runs",
        "StrictInt | Ref",
        operation(schedule={"kind": "cron", "cron": "0 * * * *", "maxRuns": HOLE}),
        ours=_MAX_RUNS_OURS,
    ),
    ScalarRule(
        "V1IntervalSchedule.max_runs",
        "StrictInt | Ref",
        operation(schedule={"kind": "interval", "frequency": 60, "maxRuns": HOLE}),
        ours=_MAX_RUNS_OURS,
    ),
    ScalarRule(
        "V1IntervalSchedule.frequency",
        "timedelta | Ref",
        operation(schedule={"kind": "interval", "frequency": HOLE}),
        ours="VVVIIVVIII",  # a frequency of zero or less is refused here (KNOWN_DIFFERENCES.md)
    ),
    # Matrices.
    ScalarRule("V1GridSearch.num_runs", "PositiveInt, compared with 1 before conversion", matrix("grid", numRuns=HOLE)),
    ScalarRule(
        "V1GridSearch.concurrency", "PositiveInt, compared with 1 before conversion", matrix("grid", concurrency=HOLE)
    ),
    ScalarRule(
        "V1RandomSearch.num_runs", "PositiveInt, compared with 1 before conversion", matrix("random", numRuns=HOLE)
    ),
    ScalarRule(
        "V1RandomSearch.concurrency",
        "PositiveInt, compared with 1 before conversion",
        matrix("random", concurrency=HOLE),
    ),
    ScalarRule("V1RandomSearch.seed", "StrictInt | Ref", matrix("random", seed=HOLE)),
    ScalarRule("V1Mapping.concurrency", "PositiveInt", matrix("mapping", concurrency=HOLE)),
    ScalarRule("V1TPE.num_runs", "PositiveInt, compared with 1 before conversion", matrix("tpe", numRuns=HOLE)),
    ScalarRule("V1TPE.concurrency", "PositiveInt, compared with 1 before conversion", matrix("tpe", concurrency=HOLE)),
    ScalarRule("V1TPE.max_iterations", "StrictInt | Ref", matrix("tpe", maxIterations=HOLE)),
    ScalarRule("V1TPE.seed", "StrictInt | Ref", matrix("tpe", seed=HOLE)),
    ScalarRule(
        "V1Iterative.max_iterations",
        "PositiveInt, compared with 1 before conversion",
        matrix("iterative", maxIterations=HOLE),
    ),
    ScalarRule(
        "V1Iterative.concurrency",
        "PositiveInt, compared with 1 before conversion",
        matrix("iterative", concurrency=HOLE),
    ),
    ScalarRule("V1Iterative.seed", "StrictInt | Ref", matrix("iterative", seed=HOLE)),
    ScalarRule("V1Hyperband.max_iterations", "PositiveInt", matrix("hyperband", maxIterations=HOLE)),
    ScalarRule("V1Hyperband.eta", "float >= 0 | Ref", matrix("hyperband", eta=HOLE)),
    ScalarRule("V1Hyperband.concurrency", "PositiveInt | Ref", matrix("hyperband", concurrency=HOLE)),
    ScalarRule("V1Hyperband.seed", "StrictInt | Ref", matrix("hyperband", seed=HOLE)),
    ScalarRule("V1Bayes.num_initial_runs", "PositiveInt | Ref", matrix("bayes", numInitialRuns=HOLE)),
    ScalarRule("V1Bayes.max_iterations", "PositiveInt | Ref", matrix("bayes", maxIterations=HOLE)),
    ScalarRule("V1Bayes.concurrency", "PositiveInt | Ref", matrix("bayes", concurrency=HOLE)),
    ScalarRule("V1Bayes.seed", "StrictInt | Ref", matrix("bayes", seed=HOLE)),
    ScalarRule("UtilityFunctionConfig.kappa", "float", matrix("bayes", utilityFunction={"kappa": HOLE})),
    ScalarRule(
        "UtilityFunctionConfig.eps",
        "float",
        matrix("bayes", utilityFunction={"acquisitionFunction": "ei", "eps": HOLE}),
    ),
    ScalarRule(
        "UtilityFunctionConfig.num_warmup", "int", matrix("bayes", utilityFunction={"kappa": 1, "numWarmup": HOLE})
    ),
    ScalarRule(
        "UtilityFunctionConfig.num_iterations",
        "int",
        matrix("bayes", utilityFunction={"kappa": 1, "numIterations": HOLE}),
    ),
    ScalarRule(
        "GaussianProcessConfig.length_scale",
        "float",
        matrix("bayes", utilityFunction={"kappa": 1, "gaussianProcess": {"lengthScale": HOLE}}),
    ),
    ScalarRule(
        "GaussianProcessConfig.nu",
        "float",
        matrix("bayes", utilityFunction={"kappa": 1, "gaussianProcess": {"nu": HOLE}}),
    ),
    ScalarRule(
        "GaussianProcessConfig.num_restarts_optimizer",
        "int",
        matrix("bayes", utilityFunction={"kappa": 1, "gaussianProcess": {"numRestartsOptimizer": HOLE}}),
    ),
    # Search spaces (as mappings; the list and "a:b:c" forms convert the same way).
    *_hp_rules(
        "Range",
        "range",
        {"start": -10, "stop": 10, "step": 1},
        {"start": "float, below the upper bound", "stop": "float", "step": "StrictInt | StrictFloat | float, > 0"},
    ),
    ScalarRule(
        "DateRange.step",
        "int > 0 (checked by the model)",
        {
            "kind": "operation",
            "component": {"inputs": [{"name": "day", "type": "date"}], "run": JOB},
            "matrix": {
                "kind": "grid",
                "params": {
                    "day": {"kind": "daterange", "value": {"start": "2024-01-01", "stop": "2024-02-01", "step": HOLE}}
                },
            },
        },
    ),
    ScalarRule(
        "DateTimeRange.step",
        "timedelta, not zero (checked by the model)",
        {
            "kind": "operation",
            "component": {"inputs": [{"name": "at", "type": "datetime"}], "run": JOB},
            "matrix": {
                "kind": "grid",
                "params": {
                    "at": {
                        "kind": "datetimerange",
                        "value": {"start": "2024-01-01T00:00:00", "stop": "2024-02-01T00:00:00", "step": HOLE},
                    }
                },
            },
        },
    ),
    *_hp_rules(
        "LinSpace",
        "linspace",
        {"start": -10, "stop": 10, "num": 3},
        {"start": "float, below the upper bound", "stop": "float", "num": "int > 0 (checked by the model)"},
    ),
    *_hp_rules(
        "LogSpace",
        "logspace",
        {"start": -10, "stop": 10, "num": 3},
        {
            "start": "float, below the upper bound",
            "stop": "float",
            "num": "int > 0 (checked by the model)",
            "base": "int",
        },
    ),
    *_hp_rules(
        "GeomSpace",
        "geomspace",
        {"start": -10, "stop": 10, "num": 3},
        {"start": "float, below the upper bound", "stop": "float", "num": "int > 0 (checked by the model)"},
    ),
    *_hp_rules("Uniform", "uniform", {"low": -10, "high": 10}, _LOW_HIGH),
    *_hp_rules("LogUniform", "loguniform", {"low": -10, "high": 10}, _LOW_HIGH),
    *_hp_rules(
        "QUniform",
        "quniform",
        {"low": -10, "high": 10, "q": 1},
        {**_LOW_HIGH, "q": "StrictInt | StrictFloat | float, > 0"},
    ),
    *_hp_rules(
        "QLogUniform",
        "qloguniform",
        {"low": -10, "high": 10, "q": 1},
        {**_LOW_HIGH, "q": "StrictInt | StrictFloat | float, > 0"},
    ),
    *_hp_rules("Normal", "normal", {"loc": 0, "scale": 1}, _LOC_SCALE),
    *_hp_rules("LogNormal", "lognormal", {"loc": 0, "scale": 1}, _LOC_SCALE),
    *_hp_rules(
        "QNormal",
        "qnormal",
        {"loc": 0, "scale": 1, "q": 1},
        {**_LOC_SCALE, "q": "StrictInt | StrictFloat | float, > 0"},
    ),
    *_hp_rules(
        "QLogNormal",
        "qlognormal",
        {"loc": 0, "scale": 1, "q": 1},
        {**_LOC_SCALE, "q": "StrictInt | StrictFloat | float, > 0"},
    ),
    # Early stopping.
    ScalarRule(
        "V1MetricEarlyStopping.value",
        "float | Ref",
        early_stopping({"kind": "metric_early_stopping", "metric": "loss", "value": HOLE, "optimization": "minimize"}),
    ),
    ScalarRule(
        "V1MetricEarlyStopping.optimization",
        "StrictFloat | Optimization",
        early_stopping({"kind": "metric_early_stopping", "metric": "loss", "value": 0.1, "optimization": HOLE}),
    ),
    ScalarRule(
        "V1FailureEarlyStopping.percent",
        "float | Ref",
        early_stopping({"kind": "failure_early_stopping", "percent": HOLE}),
    ),
    *[
        ScalarRule(
            f"V1{name.title()}StoppingPolicy.{field}",
            kind,
            policy({"kind": name, "evaluationInterval": 1, **({"percent": 1} if name != "median" else {}), key: HOLE}),
        )
        for name in ("median", "truncation", "diff")
        for field, key, kind in (
            ("evaluation_interval", "evaluationInterval", "StrictInt | Ref"),
            ("min_interval", "minInterval", "StrictInt | Ref"),
            ("min_samples", "minSamples", "StrictInt | Ref"),
            ("percent", "percent", "float | Ref"),
        )
        if not (name == "median" and field == "percent")
    ],
    # Joins, IO validation.
    ScalarRule("V1Join.limit", "StrictInt | Ref", join(limit=HOLE)),
    ScalarRule("V1Join.offset", "StrictInt | Ref", join(offset=HOLE)),
    *[
        ScalarRule(f"V1Validation.{snake(key)}", "float | Ref", validation({key: HOLE}))
        for key in ("gt", "ge", "lt", "le", "multipleOf")
    ],
    *[
        ScalarRule(f"V1Validation.{snake(key)}", "StrictInt | Ref", validation({key: HOLE}))
        for key in ("minDigits", "maxDigits", "decimalPlaces", "minLength", "maxLength", "minItems", "maxItems")
    ],
    # Runs.
    ScalarRule("V1Environment.priority", "int", run({"kind": "job", "environment": {"priority": HOLE}})),
    ScalarRule("V1ArtifactsType.workers", "StrictInt | Ref", init({"artifacts": {"files": ["a"], "workers": HOLE}})),
    ScalarRule("V1DockerfileType.uid", "int | Ref", init({"dockerfile": {"image": "busybox", "uid": HOLE}})),
    ScalarRule("V1DockerfileType.gid", "int | Ref", init({"dockerfile": {"image": "busybox", "gid": HOLE}})),
    ScalarRule("V1TensorboardType.port", "StrictInt | Ref", init({"tensorboard": {"port": HOLE}})),
    ScalarRule("V1Service.ports", "StrictInt", run({"kind": "service", "ports": [HOLE]})),
    ScalarRule("V1Service.replicas", "StrictInt | Ref", run({"kind": "service", "replicas": HOLE})),
    ScalarRule(
        "V1Dag.concurrency",
        "PositiveInt | Ref",
        run({"kind": "dag", "operations": [{"name": "a", "component": {"run": JOB}}], "concurrency": HOLE}),
    ),
    ScalarRule("V1MPIJob.slots_per_worker", "StrictInt | Ref", run({"kind": "mpijob", "slotsPerWorker": HOLE})),
    ScalarRule("V1KFReplica.replicas", "StrictInt | Ref", run({"kind": "mpijob", "worker": {"replicas": HOLE}})),
    *[
        ScalarRule(
            f"V1SchedulingPolicy.{snake(key)}",
            "StrictInt | Ref",
            run({"kind": "tfjob", "schedulingPolicy": {key: HOLE}}),
        )
        for key in ("minAvailable", "minResources", "scheduleTimeoutSeconds")
    ],
    ScalarRule("V1PytorchJob.n_proc_per_node", "StrictInt | Ref", run({"kind": "pytorchjob", "nProcPerNode": HOLE})),
    *[
        ScalarRule(
            f"V1PytorchElasticPolicy.{snake(key)}",
            "StrictInt | Ref",
            run({"kind": "pytorchjob", "elasticPolicy": {key: HOLE}}),
        )
        for key in ("minReplicas", "maxReplicas", "rdvzPort", "nProcPerNode", "maxRestarts")
    ],
    ScalarRule("V1DaskCluster.min_replicas", "StrictInt | Ref", run({"kind": "daskcluster", "minReplicas": HOLE})),
    ScalarRule("V1DaskCluster.max_replicas", "StrictInt | Ref", run({"kind": "daskcluster", "maxReplicas": HOLE})),
    ScalarRule("V1DaskReplica.replicas", "StrictInt | Ref", run({"kind": "daskcluster", "worker": {"replicas": HOLE}})),
    ScalarRule("V1RayReplica.replicas", "StrictInt | Ref", run({"kind": "raycluster", "head": {"replicas": HOLE}})),
    *[
        ScalarRule(
            f"V1RayReplica.{snake(key)}",
            "StrictInt | Ref",
            run({"kind": "raycluster", "workers": {"small": {key: HOLE}}}),
        )
        for key in ("minReplicas", "maxReplicas")
    ],
]


@dataclass(frozen=True)
class DocRule:
    label: str
    doc: dict[str, Any]
    valid: bool


# Search spaces: ranges and spaces need start < stop and a non-zero third value; distributions
# (uniform, normal and their q/log variants) take their bounds in any order.
SEARCH_SPACE_RULES: list[DocRule] = [
    DocRule("range: start must be below stop", hp("range", {"start": 10, "stop": 10, "step": 1}), False),
    DocRule("range: step must not be zero", hp("range", {"start": 0, "stop": 10, "step": 0}), False),
    DocRule("range: as a list", hp("range", [0, 10, 2]), True),
    DocRule("range: as a string", hp("range", "0:10:2"), True),
    DocRule("linspace: start must be below stop", hp("linspace", {"start": 10, "stop": 5, "num": 3}), False),
    DocRule("logspace: num must not be zero", hp("logspace", {"start": 0, "stop": 5, "num": 0}), False),
    DocRule("uniform: bounds in any order", hp("uniform", {"low": 11, "high": 10}), True),
    DocRule("uniform: equal bounds", hp("uniform", [10, 10]), True),
    DocRule("quniform: bounds in any order", hp("quniform", {"low": 10, "high": 1, "q": 1}), True),
    DocRule("quniform: q must not be zero", hp("quniform", {"low": 0, "high": 1, "q": 0}), False),
    DocRule("loguniform: bounds in any order", hp("loguniform", "5:1"), True),
    DocRule("normal: any scale", hp("normal", {"loc": 5, "scale": -1}), True),
]


# --- 2. key casing --------------------------------------------------------------------------------

# Polyaxon reads the top level of a file with a `kind` as "sections" (Sections.SECTIONS), which
# are camelCase: the snake_case spelling of these ten is an unknown section there. Every model
# below the top level populates by name and by alias, and so does the top level of a file without
# a kind, an inline component, a DAG operation or component, and a file read through a reference.
CAMEL_ONLY_SECTIONS = {
    "strict_params": "strictParams",
    "is_approved": "isApproved",
    "skip_on_upstream_skip": "skipOnUpstreamSkip",
    "is_preset": "isPreset",
    "patch_strategy": "patchStrategy",
    "run_patch": "runPatch",
    "hub_ref": "hubRef",
    "dag_ref": "dagRef",
    "path_ref": "pathRef",
    "url_ref": "urlRef",
}
_SECTION_VALUES: dict[str, Any] = {
    "strictParams": False,
    "isApproved": True,
    "skipOnUpstreamSkip": True,
    "isPreset": False,
    "patchStrategy": "replace",
    "runPatch": {"container": {"image": "python:3.11"}},
    "pathRef": "component.yaml",
}


@dataclass(frozen=True)
class CasingRule:
    label: str
    doc: dict[str, Any]
    valid: bool
    files: dict[str, Any] = field(default_factory=dict)  # other files beside it, by name


def _with_section(where: str, key: str, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid document with `key: value` at the top level of `where`, and the files it needs."""
    files: dict[str, Any] = {}
    local: dict[str, Any] = {key: value}
    camel = CAMEL_ONLY_SECTIONS.get(key, key)
    if camel in ("pathRef",):
        files["component.yaml"] = {"kind": "component", "run": JOB}
    else:
        local["component"] = {"run": copy.deepcopy(JOB)}
    if where == "operation":
        return {"kind": "operation", **local}, files
    if where == "no kind":
        return local, files
    if where == "inline component":
        return {"kind": "operation", "component": {"kind": "operation", **local}}, files
    if where == "DAG operation":
        return run({"kind": "dag", "operations": [{"name": "a", **local}]}), files
    raise ValueError(where)


def _casing_rules() -> list[CasingRule]:
    rules: list[CasingRule] = []
    for snake_key, camel in CAMEL_ONLY_SECTIONS.items():
        if camel not in _SECTION_VALUES:
            continue  # hubRef, urlRef, dagRef: references to resolve, below
        value = _SECTION_VALUES[camel]
        for where in ("operation", "no kind", "inline component", "DAG operation"):
            for key in (camel, snake_key):
                if camel == "pathRef" and where in ("inline component", "DAG operation"):
                    continue  # a pathRef inside a DAG is a DAG-level concern, not casing
                doc, files = _with_section(where, key, value)
                valid = not (where == "operation" and key == snake_key)
                rules.append(CasingRule(f"{where}: {key}", doc, valid, files))
    # The same keys in a component file read through a pathRef: a plain model, both spellings.
    for key in ("is_approved", "strict_params", "skip_on_upstream_skip"):
        rules.append(
            CasingRule(
                f"referenced component: {key}",
                {"kind": "operation", "pathRef": "component.yaml"},
                True,
                {"component.yaml": {"kind": "component", key: key != "strict_params", "run": JOB}},
            )
        )
    # A component file with a kind is read as sections too.
    rules.append(CasingRule("component: is_approved", component(is_approved=True), False))
    rules.append(CasingRule("component: isApproved", component(isApproved=True), True))
    rules.append(CasingRule("component: strict_params", component(strict_params=True), False))
    rules.append(
        CasingRule("operation: hub_ref", {"kind": "operation", "hub_ref": "x", "component": {"run": JOB}}, False)
    )
    rules.append(CasingRule("operation: dag_ref", {"kind": "operation", "dag_ref": "x"}, False))
    rules.append(CasingRule("operation: url_ref", {"kind": "operation", "url_ref": "https://x/y.yaml"}, False))
    return rules


CASING_RULES = _casing_rules()


def nested_snake_cases(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """`doc` with one camelCase key below the top level snake_cased, for every such key.

    Below the top level every Polyaxon model populates by name too: all of these stay valid.
    """
    out: list[tuple[str, dict[str, Any]]] = []

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if len(path) >= 1 and isinstance(key, str) and snake(key) != key:
                    out.append((".".join(map(str, (*path, snake(key)))), _rename(doc, (*path, key))))
                walk(item, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*path, i))

    walk(doc, ())
    return out


def _rename(doc: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        return {(snake(k) if k == path[0] else k): v for k, v in doc.items()}
    copied = list(doc) if isinstance(doc, list) else dict(doc)
    copied[path[0]] = _rename(copied[path[0]], path[1:])
    return copied


# Documents whose nested keys are camelCase spellings of Polyaxon aliases, one per section.
NESTED_CASING_DOCS: list[dict[str, Any]] = [
    component(
        strictParams=False,
        isApproved=True,
        termination={"maxRetries": 1, "culling": {"timeout": 1}, "probe": {"exec": {"command": ["a"]}}},
        plugins={
            "collectLogs": True,
            "autoResume": True,
            "mountArtifactsStore": False,
            "logLevel": "info",
            "sidecar": {"imageTag": "t", "imagePullPolicy": "Always", "monitorLogs": True, "sleepInterval": 2},
        },
        cache={"sections": ["init"], "io": ["a"]},
        inputs=[
            {
                "name": "a",
                "type": "int",
                "isOptional": True,
                "value": 1,
                "argFormat": "--a={{ a }}",
                "toEnv": "A",
                "toInit": False,
                "delayValidation": True,
                "validation": {"minDigits": 1, "maxDigits": 3, "multipleOf": 1},
            }
        ],
        build={"hubRef": "kaniko", "runPatch": {"container": {"image": "x"}}, "patchStrategy": "replace"},
        hooks=[{"hubRef": "h", "disableDefaults": True, "params": {"a": {"value": 1, "contextOnly": True}}}],
        template={"enabled": True, "fields": ["a"]},
    ),
    run(
        {
            "kind": "job",
            "container": {"image": "x", "imagePullPolicy": "Always", "workingDir": "/a"},
            "environment": {
                "nodeSelector": {"a": "b"},
                "serviceAccountName": "s",
                "securityContext": {"runAsUser": 1},
                "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["a"]}],
                "restartPolicy": "Never",
                "priorityClassName": "p",
                "imagePullSecrets": ["a"],
            },
            "init": [
                {"dockerfile": {"image": "x", "postRunCopy": ["b"], "langEnv": "en", "workdirPath": "/w"}},
                {"tensorboard": {"useNames": True, "pathPrefix": "/p"}},
                {"artifactRef": "a"},
            ],
        }
    ),
    run(
        {
            "kind": "raycluster",
            "rayVersion": "2",
            "runtimeEnv": {"pip": ["a"]},
            "head": {"rayStartParams": {"a": "b"}, "minReplicas": 1},
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {"upscalingMode": "Default", "imagePullPolicy": "Always"},
        }
    ),
    run(
        {
            "kind": "pytorchjob",
            "cleanPodPolicy": "All",
            "nProcPerNode": 2,
            "elasticPolicy": {"rdvzBackend": "c10d", "maxRestarts": 2},
            "schedulingPolicy": {"minAvailable": 1, "scheduleTimeoutSeconds": 3},
        }
    ),
    run({"kind": "service", "rewritePath": True, "isExternal": True}),
    run({"kind": "daskcluster", "minReplicas": 1, "maxReplicas": 2}),
    run(
        {
            "kind": "dag",
            "operations": [{"name": "a", "dagRef": "c", "skipOnUpstreamSkip": True}],
            "components": [{"name": "c", "run": JOB}],
            "earlyStopping": [{"kind": "failure_early_stopping", "percent": 1}],
        }
    ),
    matrix(
        "bayes",
        utilityFunction={
            "acquisitionFunction": "ucb",
            "kappa": 1,
            "gaussianProcess": {"kernel": "rbf", "lengthScale": 1.0},
        },
    ),
    matrix("random", earlyStopping=[{"kind": "failure_early_stopping", "percent": 1}]),
    policy({"kind": "truncation", "evaluationInterval": 1, "percent": 1, "includeSucceeded": True, "minSamples": 1}),
    operation(
        schedule={
            "kind": "cron",
            "cron": "0 * * * *",
            "startAt": "2024-01-01T00:00:00Z",
            "endAt": "2025-01-01T00:00:00Z",
            "maxRuns": 2,
            "dependsOnPast": True,
        }
    ),
    operation(params={"lr": {"value": 0.2, "toInit": False, "contextOnly": False}}),
    join(limit=2),
]


# --- 3. param references --------------------------------------------------------------------------

RUN_UUID = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class ParamRule:
    rule: int  # the numbered rule below
    where: str  # "top", "dag" (an operation of a DAG)
    io: str  # what the param fills: "input", "output", "context" (nothing declared)
    ref: str | None
    value: Any
    valid: bool

    @property
    def label(self) -> str:
        return f"rule {self.rule}: {self.where} {self.io} param {{ref: {self.ref}, value: {self.value!r}}}"

    @property
    def doc(self) -> dict[str, Any]:
        return param_doc(self.where, self.io, self.ref, self.value)


def param_doc(where: str, io: str, ref: str | None, value: Any) -> dict[str, Any]:
    """A param `p` given {ref, value}, filling an int input `x`, an int output `o`, or nothing.

    In a DAG, op `a` declares outputs `out` (int) and `art` (artifacts) and an optional input `i`;
    the DAG declares an optional int input `d`; op `b` holds the param.
    """
    param: dict[str, Any] = {"value": value} if ref is None else {"ref": ref, "value": value}
    name = {"input": "x", "output": "o", "context": "zz"}[io]
    params = {name: param} if io == "input" else {name: param, "x": 1}
    interface = {
        "inputs": [{"name": "x", "type": "int"}],
        "outputs": [{"name": "o", "type": "int", "isOptional": True}],
    }
    if where == "top":
        return {"kind": "operation", "component": {**interface, "run": JOB}, "params": params}
    upstream = {
        "name": "a",
        "component": {
            "inputs": [{"name": "i", "type": "int", "isOptional": True}],
            "outputs": [{"name": "out", "type": "int"}, {"name": "art", "type": "artifacts"}],
            "run": JOB,
        },
    }
    return {
        "kind": "operation",
        "component": {
            "inputs": [{"name": "d", "type": "int", "isOptional": True}],
            "run": {
                "kind": "dag",
                "operations": [upstream, {"name": "b", "dagRef": "tmpl", "params": params}],
                "components": [{"name": "tmpl", **interface, "run": JOB}],
            },
        },
    }


# The rules, as V1Param.get_spec, refs.validate_ref and ParamSpec.validate_ref apply them. Rules
# 2-10 hold for every param with a `ref` (declared or not); 13-16 for params that fill a declared
# input (outputs: always as at the top level).
#  1. a param with a ref needs a string value (model);
#  2. the value (inside {{ }} if templated) has at most three dot-separated parts;
#  3. a one-part value is one of inputs, outputs, io, artifacts;
#  4. ... and not `outputs` with `ref: dag`;
#  5. a two-part value starts with inputs, outputs, artifacts or globals;
#  6. a three-part value starts with artifacts;
#  7. the ref has at most two parts;
#  8. a one-part ref is `dag`;
#  9. a two-part ref starts with ops or runs;
# 10. runs.<x>: x is a run uuid;
# 11. a join param's value is a string (with rules 2-6) or a mapping, when it fills a declared IO;
# 12. a join param fills a list (isList) or an artifacts input;
# 13. a {{ template }} value, a runs.<uuid> ref and an artifacts.* value are not looked up;
# 14. otherwise `<ref>.<value>` must be in the context: the DAG's (dag.inputs.<name>,
#     dag.globals.<key>, ops.<op>.inputs|outputs.<name>, ops.<op>.artifacts.<artifacts IO>,
#     ops.<op>.inputs|outputs|globals|artifacts|io, ...) in a DAG, nothing at the top level;
# 15. of a compatible type (equal, or both among str, path, s3, gcs, wasb);
# 16. with the same isList (unset and false differ).
PARAM_RULES: list[ParamRule] = [
    ParamRule(1, "top", "input", "ops.a", 3, False),
    ParamRule(2, "top", "context", "ops.a", "artifacts.a.b.c", False),
    ParamRule(2, "top", "context", "ops.a", "{{ a.b.c.d }}", False),
    ParamRule(3, "top", "context", "ops.a", "io", True),
    ParamRule(3, "top", "context", "ops.a", "uuid", False),
    ParamRule(3, "top", "context", "ops.a", "", False),
    ParamRule(3, "dag", "context", "dag", "{{ uuid }}", False),
    ParamRule(4, "top", "context", "dag", "outputs", False),
    ParamRule(4, "top", "context", "dag", "inputs", True),
    ParamRule(4, "top", "context", "ops.a", "outputs", True),
    ParamRule(5, "top", "context", "dag", "globals.uuid", True),
    ParamRule(5, "top", "context", "dag", "dag.inputs", False),
    ParamRule(5, "top", "context", "ops.a", "outputs. out", True),
    ParamRule(6, "top", "context", "ops.a", "artifacts.a.b", True),
    ParamRule(6, "top", "context", "ops.a", "outputs.a.b", False),
    ParamRule(6, "dag", "context", "dag", "dag.inputs.d", False),
    ParamRule(7, "top", "context", "ops.a.b", "outputs.out", False),
    ParamRule(8, "top", "context", "ops", "outputs.out", False),
    ParamRule(8, "top", "context", "runs", "outputs.out", False),
    ParamRule(9, "top", "context", "foo.a", "outputs.out", False),
    ParamRule(9, "top", "context", "Ops.a", "outputs.out", False),
    ParamRule(10, "top", "context", f"runs.{RUN_UUID}", "outputs.out", True),
    ParamRule(10, "top", "context", "runs.0123-4567", "outputs.out", False),
    ParamRule(10, "dag", "input", "runs.train", "outputs.out", False),
    ParamRule(13, "top", "input", "ops.a", "{{ outputs.out }}", True),
    ParamRule(13, "top", "input", f"runs.{RUN_UUID}", "outputs.out", True),
    ParamRule(13, "top", "input", "dag", "artifacts.out", True),
    ParamRule(14, "top", "input", "ops.a", "outputs.out", False),
    ParamRule(14, "top", "input", "dag", "inputs.d", False),
    ParamRule(14, "top", "input", "dag", "globals.uuid", False),
    ParamRule(14, "top", "output", "ops.a", "outputs.out", False),
    ParamRule(14, "dag", "output", "ops.a", "outputs.out", False),
    ParamRule(13, "dag", "output", "ops.a", "{{ outputs.out }}", True),
    ParamRule(14, "dag", "input", "ops.a", "outputs.out", True),
    ParamRule(14, "dag", "input", "ops.a", "inputs.i", True),
    ParamRule(14, "dag", "input", "dag", "inputs.d", True),
    ParamRule(3, "dag", "input", "dag", "uuid", False),
    ParamRule(14, "dag", "input", "ops.a", "outputs.nope", False),
    ParamRule(14, "dag", "input", "ops.a", "artifacts.nope", True),
    ParamRule(15, "dag", "input", "ops.a", "io", False),  # ops.a.io is a str, x an int
    ParamRule(14, "dag", "context", "ops.a", "outputs.nope", True),  # undeclared: not looked up
    ParamRule(15, "dag", "input", "ops.a", "globals.uuid", False),
    ParamRule(3, "dag", "input", "dag", "globals", False),
    ParamRule(15, "dag", "input", "ops.a", "artifacts.art", False),
]


def _dag(*ops: dict[str, Any], inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": "operation", "component": {"inputs": inputs or [], "run": {"kind": "dag", "operations": list(ops)}}}


_A = {"name": "a", "component": {"outputs": [{"name": "out", "type": "int"}], "run": JOB}}


def _b(inputs: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    return {"name": "b", "component": {"inputs": inputs, "run": JOB}, "params": params}


PARAM_DOC_RULES: list[DocRule] = [
    DocRule(
        "rule 11: a join param filling a declared input takes a string or a mapping",
        operation(
            component={"inputs": [{"name": "a", "type": "int", "isList": True}], "run": JOB},
            joins=[{"query": "q", "params": {"a": {"value": 3}}}],
        ),
        False,
    ),
    DocRule(
        "rule 11: a join param's string value follows rules 2-6",
        operation(
            component={"inputs": [{"name": "a", "type": "int", "isList": True}], "run": JOB},
            joins=[{"query": "q", "params": {"a": {"value": "foo.x"}}}],
        ),
        False,
    ),
    DocRule(
        "rule 11: undeclared join params are not checked",
        operation(joins=[{"query": "q", "params": {"a": {"value": "foo.x"}}}]),
        True,
    ),
    DocRule(
        "rule 11: every join needs params",
        operation(joins=[{"query": "q"}]),
        False,
    ),
    DocRule(
        "rule 12: a join fills a list input",
        operation(
            component={"inputs": [{"name": "a", "type": "int", "isList": True}], "run": JOB},
            joins=[{"query": "q", "params": {"a": {"value": "outputs.x"}}}],
        ),
        True,
    ),
    DocRule(
        "rule 12: ... or an artifacts input",
        operation(
            component={"inputs": [{"name": "a", "type": "artifacts"}], "run": JOB},
            joins=[{"query": "q", "params": {"a": {"value": {"files": ["x"]}}}}],
        ),
        True,
    ),
    DocRule(
        "rule 12: ... never a single value",
        operation(
            component={"inputs": [{"name": "a", "type": "int"}], "run": JOB},
            joins=[{"query": "q", "params": {"a": {"value": "outputs.x"}}}],
        ),
        False,
    ),
    DocRule(
        "rule 12: a param of the same name wins over the join's",
        operation(
            component={"inputs": [{"name": "a", "type": "int"}], "run": JOB},
            params={"a": 1},
            joins=[{"query": "q", "params": {"a": {"value": "foo.x"}}}],
        ),
        True,
    ),
    DocRule(
        "rule 16: isList unset on both sides",
        _dag(_A, _b([{"name": "x", "type": "int"}], {"x": {"ref": "ops.a", "value": "outputs.out"}})),
        True,
    ),
    DocRule(
        "rule 16: isList false on one side, unset on the other",
        _dag(_A, _b([{"name": "x", "type": "int", "isList": False}], {"x": {"ref": "ops.a", "value": "outputs.out"}})),
        False,
    ),
    DocRule(
        "rule 15: str and path are compatible",
        _dag(
            {"name": "a", "component": {"outputs": [{"name": "out", "type": "path"}], "run": JOB}},
            _b([{"name": "x", "type": "str"}], {"x": {"ref": "ops.a", "value": "outputs.out"}}),
        ),
        True,
    ),
    DocRule(
        "rule 14: a param of a component used by a DAG op counts as an edge",
        {
            "kind": "operation",
            "component": {
                "run": {
                    "kind": "dag",
                    "operations": [{"name": "a", "dagRef": "t"}],
                    "components": [{"name": "t", "params": {"q": {"ref": "ops.zz", "value": "outputs.o"}}, "run": JOB}],
                }
            },
        },
        False,
    ),
    DocRule(
        "event refs ops.<name>.<more> inside a DAG name op <name>",
        _dag(
            _A, {"name": "c", "events": [{"kinds": ["run_status_done"], "ref": "ops.a.x"}], "component": {"run": JOB}}
        ),
        True,
    ),
    DocRule(
        "event refs other than ops.<name> inside a DAG are not edges",
        _dag(_A, {"name": "c", "events": [{"kinds": ["run_status_done"], "ref": "foo"}], "component": {"run": JOB}}),
        True,
    ),
]


# Differences we keep on purpose (KNOWN_DIFFERENCES.md): Polyaxon valid, us invalid.
PARAM_STRICTER: list[DocRule] = [
    DocRule(
        "a {{ ops.<name> }} template naming no op of the DAG",
        _dag(_A, _b([{"name": "x", "type": "int"}], {"x": "{{ ops.zz.outputs.out }}"})),
        True,
    ),
    DocRule(
        "a {{ ops.<name> }} template forming a cycle",
        _dag(_A, _b([{"name": "x", "type": "int"}], {"x": "{{ ops.b.outputs.out }}"})),
        True,
    ),
    DocRule(
        "a DAG inside a DAG operation refers to an op it does not have",
        _dag(
            {
                "name": "n",
                "component": {
                    "run": {
                        "kind": "dag",
                        "operations": [{"name": "m", "dependencies": ["nope"], "component": {"run": JOB}}],
                    }
                },
            }
        ),
        True,
    ),
    DocRule(
        "a DAG inside a DAG operation takes a param from a DAG input it does not declare",
        _dag(
            {
                "name": "n",
                "component": {
                    "run": {
                        "kind": "dag",
                        "operations": [
                            {
                                "name": "m",
                                "params": {"x": {"ref": "dag", "value": "inputs.q"}},
                                "component": {"inputs": [{"name": "x", "type": "int"}], "run": JOB},
                            }
                        ],
                    }
                },
            }
        ),
        True,
    ),
]


# --- 4. event refs across files -------------------------------------------------------------------


def subscriber(name: str, ref: str) -> dict[str, Any]:
    return {
        "kind": "operation",
        "name": name,
        "component": {"run": JOB},
        "events": [{"kinds": ["run_status_succeeded"], "ref": ref}],
    }


def publisher(name: str) -> dict[str, Any]:
    return {"kind": "operation", "name": name, "component": {"run": JOB}}
