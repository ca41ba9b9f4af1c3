"""Differential test against Polyaxon's own parser (the oracle, installed by `make oracle`).

Hypothesis generates operations (valid ones and mutated ones) from the parts of the spec that
carry most of the semantics: inputs and their types, params, patch strategies, shortcuts, run
patches, termination, schedules and matrices; and, from the rule tables of
tests/unit/spec/rules.py, every numeric field with quoted, fractional, boolean and referenced
values, snake_case spellings of keys at every level, param references of every form, joins and
event refs. For each, our verdict must equal the oracle's, unless the case is one of the
documented intentional differences; for operations both accept, the composed `run` section must
be the same.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.spec import validate_paths
from tests.oracle.oracle import Oracle, available
from tests.unit.spec import rules

pytestmark = pytest.mark.oracle

if not available():
    if os.environ.get("CI"):
        raise RuntimeError("the oracle venv is missing; `make test` runs `make oracle` first")
    pytest.skip("the oracle is not installed: run `make oracle`", allow_module_level=True)


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    proc = Oracle()
    yield proc
    proc.close()


TYPES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(-5, 5),
    "float": st.floats(-2, 2, allow_nan=False).map(lambda f: round(f, 3)),
    "str": st.text("abc xyz", min_size=1, max_size=5),
    "bool": st.booleans(),
    "dict": st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
    "list": st.lists(st.integers(0, 3), max_size=3),
}
ANY_VALUE = st.one_of(*TYPES.values(), st.none())
NAMES = st.sampled_from(["lr", "epochs", "data_path", "flag"])


@st.composite
def inputs(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for name in draw(st.lists(NAMES, unique=True, max_size=3)):
        type_ = draw(st.sampled_from(sorted(TYPES)))
        io: dict[str, Any] = {"name": name, "type": type_}
        choice = draw(st.sampled_from(["required", "optional", "default", "bad-default"]))
        if choice == "optional":
            io["isOptional"] = True
        elif choice == "default":
            io["value"] = draw(TYPES[type_])
        elif choice == "bad-default":
            io["value"] = draw(ANY_VALUE)
        out.append(io)
    return out


CONTAINER = st.fixed_dictionaries(
    {"image": st.sampled_from(["python:3.11", "busybox", "{{ image }}"])},
    optional={
        "command": st.sampled_from([["python"], ["/bin/sh", "-c"]]),
        "args": st.lists(st.sampled_from(["train.py", "--lr={{ lr }}", "-v"]), max_size=2),
        "env": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["A", "B"]), "value": st.sampled_from(["1", "x"])}),
            max_size=2,
            unique_by=lambda e: e["name"],
        ),
    },
)


REPLICA = st.fixed_dictionaries({"container": CONTAINER}, optional={"replicas": st.sampled_from([1, 2, "2"])})
DISTRIBUTED = {"tfjob": ["chief", "worker", "ps"], "pytorchjob": ["master", "worker"], "mpijob": ["launcher", "worker"]}


@st.composite
def component(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["job", "service", "tfjob", "pytorchjob", "mpijob"]))
    run: dict[str, Any] = {"kind": kind}
    if kind in DISTRIBUTED:
        for replica in draw(st.lists(st.sampled_from(DISTRIBUTED[kind]), unique=True, min_size=1, max_size=2)):
            run[replica] = draw(REPLICA)
    else:
        run["container"] = draw(CONTAINER)
    if kind == "service" and draw(st.booleans()):
        run["ports"] = draw(st.lists(st.integers(80, 9000), min_size=1, max_size=2))
    spec: dict[str, Any] = {"kind": "component", "run": run}
    if draw(st.booleans()):
        spec["name"] = draw(st.sampled_from(["train", "my-job", "bad name", "x_1"]))
    ios = draw(inputs())
    if ios:
        spec["inputs"] = ios
    if draw(st.booleans()):
        spec["termination"] = {"maxRetries": draw(st.one_of(st.integers(0, 3), st.just("3"), st.just("{{ r }}")))}
    return spec


@st.composite
def operation(draw: st.DrawFn) -> dict[str, Any]:
    comp = draw(component())
    if draw(st.integers(0, 4)) == 0:
        return comp  # a bare component
    op: dict[str, Any] = {"kind": "operation", "component": comp}
    names = [io["name"] for io in comp.get("inputs", [])]
    params = {}
    for name in draw(st.lists(st.sampled_from([*names, "extra"]), unique=True, max_size=3)):
        value = draw(ANY_VALUE)
        params[name] = {"value": value} if draw(st.booleans()) else value
    if params:
        op["params"] = params
    if draw(st.booleans()):
        op["patchStrategy"] = draw(st.sampled_from(["replace", "isnull", "post_merge", "pre_merge"]))
    if draw(st.booleans()):
        op["runPatch"] = {"container": draw(CONTAINER)}
    shortcut = draw(st.sampled_from(["none", "cmd", "env", "resources", "container"]))
    if shortcut == "cmd":
        op["cmd"] = draw(st.sampled_from(["python train.py", ["pip install x", "python y.py"]]))
    elif shortcut == "env":
        op["env"] = draw(st.sampled_from([{"A": "2"}, {"C": "3"}, {"A": 2}]))
    elif shortcut == "resources":
        op["resources"] = draw(
            st.sampled_from([{"cpu": 1}, {"cpu": "500m..1", "memory": "1Gi"}, {"gpu": 1}, {"cpu": "lots"}])
        )
    elif shortcut == "container":
        op["container"] = draw(CONTAINER)
    extra = draw(st.sampled_from(["none", "schedule", "matrix", "unknown-key"]))
    if extra == "schedule":
        op["schedule"] = draw(
            st.sampled_from(
                [
                    {"kind": "cron", "cron": "0 * * * *"},
                    {"kind": "interval", "frequency": 3600},
                    {"kind": "datetime", "startAt": "2026-01-01T00:00:00Z"},
                    {"kind": "cron"},
                ]
            )
        )
    elif extra == "matrix" and names:
        op["matrix"] = {"kind": "grid", "params": {names[0]: {"kind": "choice", "value": [1, 2]}}}
    elif extra == "unknown-key":
        op["runPatch"] = {"contianer": {"image": "x"}}
    return op


@st.composite
def dag(draw: st.DrawFn) -> dict[str, Any]:
    """A DAG of up to four ops over inline or named components, with dependencies and param refs."""
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, min_size=0, max_size=4))
    components = [
        {
            "name": "tmpl",
            "inputs": [{"name": "x", "type": "int", "isOptional": True, "value": 1}],
            "run": {"kind": "job", "container": {"image": "busybox"}},
        }
    ]
    operations = []
    for i, name in enumerate(names):
        op: dict[str, Any] = {"name": name}
        how = draw(st.sampled_from(["dagRef", "dagRef-missing", "inline"]))
        if how == "dagRef":
            op["dagRef"] = "tmpl"
        elif how == "dagRef-missing":
            op["dagRef"] = "nope"
        else:
            op["component"] = {
                "run": {"kind": "job", "container": {"image": "busybox"}},
                "outputs": [{"name": "out", "type": "int"}],
            }
        earlier = names[:i] + (["zz"] if draw(st.integers(0, 6)) == 0 else [])
        later = names[i:] if draw(st.integers(0, 6)) == 0 else []
        deps = draw(st.lists(st.sampled_from(earlier + later), unique=True, max_size=2)) if earlier + later else []
        if deps:
            op["dependencies"] = deps
        if how == "dagRef" and earlier and draw(st.booleans()):
            op["params"] = {"x": {"ref": f"ops.{draw(st.sampled_from(earlier))}", "value": "outputs.out"}}
        operations.append(op)
    return {
        "kind": "operation",
        "component": {"run": {"kind": "dag", "operations": operations, "components": components}},
    }


def known_difference(spec: dict[str, Any]) -> bool:
    """The documented intentional differences (KNOWN_DIFFERENCES.md) that these generators can hit."""
    schedule = spec.get("schedule")
    if isinstance(schedule, dict):
        max_runs, frequency = schedule.get("maxRuns"), schedule.get("frequency")
        if isinstance(max_runs, int) and not isinstance(max_runs, bool) and max_runs < 1:
            return True
        if isinstance(frequency, (int, float)) and not isinstance(frequency, bool) and frequency <= 0:
            return True
    events = spec.get("events")
    if isinstance(events, list):
        refs = [e.get("ref") for e in events if isinstance(e, dict)]
        if any(isinstance(r, str) and not r.startswith(("ops.", "runs.")) for r in refs):
            return True
        if spec.get("name") and f"ops.{spec['name']}" in refs:
            return True  # subscribes to its own events: a cycle of one
    return False


# --- rows of the rule tables (tests/unit/spec/rules.py) --------------------------------------------

Case = tuple[dict[str, Any], dict[str, Any]]  # the file, and other files beside it

SCALARS = st.one_of(
    st.sampled_from(rules.VALUES),
    st.integers(-3, 100),
    st.floats(-3, 100, allow_nan=False).map(lambda f: round(f, 2)),
    st.integers(-3, 100).map(str),
    st.sampled_from([None, [3], {"a": 1}, "", " 3", "3e2", "{{ params.n }}", False, "inf"]),
)


@st.composite
def scalar_case(draw: st.DrawFn) -> Case:
    rule = draw(st.sampled_from(rules.SCALAR_RULES))
    return rules.fill(rule.doc, draw(SCALARS)), {}


@st.composite
def casing_case(draw: st.DrawFn) -> Case:
    if draw(st.booleans()):
        rule = draw(st.sampled_from(rules.CASING_RULES))
        return rule.doc, rule.files
    doc = draw(st.sampled_from(rules.NESTED_CASING_DOCS))
    variants = rules.nested_snake_cases(doc)
    _, variant = draw(st.sampled_from(variants))
    return variant, {}


REFS = st.sampled_from(
    ["dag", "ops.a", "ops.b", "ops.zz", f"runs.{rules.RUN_UUID}", "runs.nope", "ops", "runs", "ops.a.b", "foo.a", ""]
)
VALUE_PARTS = st.sampled_from(["inputs", "outputs", "io", "artifacts", "globals", "out", "art", "i", "d", "uuid", "x"])


@st.composite
def ref_value(draw: st.DrawFn) -> Any:
    value = ".".join(draw(st.lists(VALUE_PARTS, min_size=1, max_size=4)))
    shape = draw(st.sampled_from(["plain", "plain", "template", "spaced", "other"]))
    if shape == "template":
        return "{{ " + value + " }}"
    if shape == "spaced":
        return value.replace(".", ". ", 1)
    if shape == "other":
        return draw(st.sampled_from([3, None, "", {"files": ["a"]}]))
    return value


@st.composite
def param_case(draw: st.DrawFn) -> Case:
    where = draw(st.sampled_from(["top", "dag"]))
    io = draw(st.sampled_from(["input", "output", "context"]))
    ref = draw(st.one_of(st.none(), REFS))
    return rules.param_doc(where, io, ref, draw(ref_value())), {}


@st.composite
def join_case(draw: st.DrawFn) -> Case:
    inputs = []
    declared = draw(st.sampled_from(["none", "int", "int-list", "artifacts"]))
    if declared != "none":
        io: dict[str, Any] = {"name": "a", "type": declared.split("-")[0]}
        if declared.endswith("list"):
            io["isList"] = True
        inputs.append(io)
    join: dict[str, Any] = {"query": "metrics.loss: <0.5"}
    params = draw(st.sampled_from(["mapping", "mapping", "none", "ref"]))
    if params == "mapping":
        join["params"] = {"a": {"value": draw(ref_value())}}
    elif params == "ref":
        join["params"] = "{{ join_params }}"
    op: dict[str, Any] = {"kind": "operation", "component": {"inputs": inputs, "run": rules.JOB}, "joins": [join]}
    if draw(st.integers(0, 4)) == 0:
        op["params"] = {"a": 1}
    return op, {}


@st.composite
def event_case(draw: st.DrawFn) -> Case:
    ref = draw(st.sampled_from(["ops.train", "ops.evaluate", "ops.x.y", f"runs.{rules.RUN_UUID}", "runs.x", "train"]))
    return rules.subscriber("evaluate", ref), {}


@st.composite
def dag_template_case(draw: st.DrawFn) -> Case:
    """A DAG op whose param templates an upstream op's output: an edge, as a ref is."""
    template = "{{ ops.a.outputs.out }}" if draw(st.booleans()) else "{{ globals.uuid }}"
    a = {"name": "a", "component": {"outputs": [{"name": "out", "type": "int"}], "run": rules.JOB}}
    b = {
        "name": "b",
        "component": {"inputs": [{"name": "x", "type": "int"}], "run": rules.JOB},
        "params": {"x": template},
    }
    if draw(st.booleans()):
        b["dependencies"] = ["a"]
    return {"kind": "operation", "component": {"run": {"kind": "dag", "operations": [a, b]}}}, {}


def strip(value: Any) -> Any:
    """Drop nulls and empty containers, so serialisation details don't count as differences."""
    if isinstance(value, dict):
        out = {k: strip(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in out.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel(k) if isinstance(k, str) else k: camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


EXAMPLES = settings(
    max_examples=int(os.environ.get("ORACLE_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def same_verdict_and_compiled_run(oracle: Oracle, folder: Path, spec: dict[str, Any], files: dict[str, Any]) -> None:
    for name, content in files.items():
        (folder / name).write_text(rules.dump(content))
    path = folder / "op.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    theirs = oracle.verdict(str(path))
    [ours] = validate_paths([str(path)])
    if known_difference(spec):
        return
    assert ours.valid == theirs["valid"], (
        f"oracle: {theirs['error']}\nours: {[str(e) for e in ours.errors]}\nspec:\n{path.read_text()}"
    )
    if ours.valid and ours.checked is not None and "compiled" in theirs:
        # Both sides camelCased: Polyaxon emits Kubernetes objects by alias, we keep them as
        # written and camelCase them when rendering (reconciler/render/objects.py).
        assert strip(camel(theirs["compiled"]["run"])) == strip(camel(ours.checked.effective["run"])), path.read_text()


@EXAMPLES
@given(spec=st.one_of(operation(), dag()))
def test_same_verdict_and_compiled_run(spec: dict[str, Any], oracle: Oracle, tmp_path: Path) -> None:
    same_verdict_and_compiled_run(oracle, tmp_path, spec, {})


@EXAMPLES
@given(case=st.one_of(scalar_case(), casing_case(), param_case(), join_case(), event_case(), dag_template_case()))
def test_rule_rows_same_verdict_and_compiled_run(case: Case, oracle: Oracle, tmp_path: Path) -> None:
    spec, files = case
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    same_verdict_and_compiled_run(oracle, folder, spec, files)
