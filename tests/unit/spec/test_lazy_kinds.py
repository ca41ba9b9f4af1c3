"""Kind-dispatched sections (`run`, `matrix`) build only the validators of the kinds a file uses
(`base.ByKind`), with the errors pydantic's own discriminated unions gave: same messages, same
`file:line:col`. The build is observed in a fresh interpreter (deterministic: which validators
exist, not how long they took)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reconciler.spec import load

PROBE = """
import json, sys
from reconciler.spec import load, runs

def built(models):
    return sorted(m.__name__ for m in models if m.__pydantic_complete__)

JOB = "kind: component\\nrun: {kind: job, container: {image: busybox}}\\n"
GRID = "kind: operation\\nhubRef: a\\nmatrix: {kind: grid, params: {lr: {kind: choice, value: [1, 2]}}}\\n"
steps = {}
assert load("job.yaml", JOB).ok
imported = ["reconciler.spec.distributed" in sys.modules, "reconciler.spec.matrix" in sys.modules]
RUNS = list(runs.RUN_MODELS.values())
steps["job"] = [built(RUNS), *imported]
assert load("grid.yaml", GRID).ok
from reconciler.spec import matrix
MATRICES = [matrix.Bayes, matrix.GridSearch, matrix.Hyperband, matrix.TPE, matrix.Iterative, matrix.Mapping,
            matrix.RandomSearch]
steps["grid"] = [built(RUNS), built(MATRICES)]
print(json.dumps(steps))
"""


def test_a_file_builds_the_validators_of_its_own_kinds_only() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    assert steps["job"] == [["Job"], False, False]  # the other kinds' modules are not even imported
    assert steps["grid"] == [["Job"], ["GridSearch"]]


def test_the_lazy_run_kinds_name_each_kinds_own_model() -> None:
    from reconciler.spec import distributed, runs

    for kind, model in runs.RUN_MODELS.items():
        assert model.model_fields["kind"].default == kind
        assert model is getattr(runs, model.__name__, None) or model is getattr(distributed, model.__name__)
    assert set(runs.LONG_RUNNING_KINDS) == {kind for kind, model in runs.RUN_MODELS.items() if model.LONG_RUNNING}


def test_the_lazy_matrix_union_names_each_kinds_own_model() -> None:
    from reconciler.spec import matrix
    from reconciler.spec.polyaxonfile import MATRIX_MODELS

    for kind, model in MATRIX_MODELS.items():
        assert model is getattr(matrix, model.__name__)
        assert model.model_fields["kind"].default == kind
    assert set(MATRIX_MODELS) == set(matrix.MATRIX_KINDS)


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        (
            "kind: operation\nhubRef: a\nmatrix:\n  kind: nope\n",
            [
                "f.yaml:4:3: matrix: unknown kind 'nope'; expected one of "
                "'bayes', 'grid', 'hyperband', 'tpe', 'iterative', 'mapping', 'random'"
            ],
        ),
        ("kind: operation\nhubRef: a\nmatrix:\n  values: [{a: 1}]\n", ["f.yaml:4:3: matrix: missing 'kind'"]),
        (
            "kind: operation\nhubRef: a\nmatrix: 5\n",
            ["f.yaml:3:9: matrix: Input should be a valid dictionary or object to extract fields from"],
        ),
        (
            "kind: operation\nhubRef: a\nmatrix:\n  kind: grid\n  params:\n    lr: {kind: choice, value: 3}\n",
            [
                "f.yaml:6:31: matrix.params.lr.value: Input should be a valid list",
                "f.yaml:6:31: matrix.params.lr.value: Input should be a valid string",
            ],
        ),
        (
            "kind: operation\nhubRef: a\nmatrix:\n  kind: random\n  params: {lr: {kind: choice, value: [1, 2]}}\n",
            ["f.yaml:4:3: missing required field 'numRuns' in matrix"],
        ),
        (
            "kind: component\nrun: 5\n",
            [
                "f.yaml:2:6: run: Input should be a valid dictionary or object to extract fields from",
                "f.yaml:2:6: run: Input should be a valid dictionary",
            ],
        ),
        (
            "kind: component\nrun:\n  kind: service\n  ports: [a]\n",
            ["f.yaml:4:11: run.ports[0]: Input should be a valid integer"],
        ),
        (
            "kind: component\nrun:\n  kind: tfjob\n  worker: {replicas: x}\n",
            ["f.yaml:4:22: run.worker.replicas: Input should be a valid integer"],
        ),
        (
            "kind: component\nrun: {kind: nope}\n",
            [
                "f.yaml:2:13: run.kind: unsupported run.kind 'nope'; expected one of job, service, dag, mpijob, "
                "pytorchjob, tfjob, mxjob, xgbjob, daskcluster, daskjob, raycluster, rayjob, sparkjob, notifier, "
                "cleaner, tuner"
            ],
        ),
        (
            "kind: component\nrun:\n  kind: dag\n  operations:\n  - name: a\n    run: x\n",
            [
                "f.yaml:6:10: run.operations[0].run: "
                "Input should be a valid dictionary or object to extract fields from",
                "f.yaml:6:10: run.operations[0].run: Input should be a valid dictionary",
            ],
        ),
    ],
    ids=[
        "matrix-unknown-kind",
        "matrix-no-kind",
        "matrix-not-a-mapping",
        "matrix-member-error",
        "matrix-member-missing",
        "run-not-a-mapping",
        "run-member-error",
        "run-distributed-member-error",
        "run-unknown-kind",
        "dag-op-run-not-a-mapping",
    ],
)
def test_kind_dispatched_errors_are_located_as_before(text: str, errors: list[str]) -> None:
    assert [str(e) for e in load("f.yaml", text).errors] == errors
