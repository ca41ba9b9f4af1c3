"""Upstream refs in params and the safe condition evaluator."""

from __future__ import annotations

import pytest

from reconciler.scheduling.conditions import ConditionError, evaluate
from reconciler.scheduling.refs import RefError, render, resolve_params
from reconciler.spec.io import Param

CTX = {"ops": {"train": {"outputs": {"loss": 0.05, "model": "s3://b/m"}, "status": "succeeded", "uuid": "r1"}}}


def test_whole_template_keeps_the_type_and_embedded_is_text() -> None:
    assert render("{{ ops.train.outputs.loss }}", CTX) == 0.05
    assert render("model at {{ops.train.outputs.model}}!", CTX) == "model at s3://b/m!"
    assert render({"a": ["{{ ops.train.status }}"]}, CTX) == {"a": ["succeeded"]}


def test_runtime_templates_are_left_for_the_renderer() -> None:
    assert render("{{ globals.uuid }}-{{ ops.train.uuid }}", CTX) == "{{ globals.uuid }}-r1"


def test_full_form_param_and_missing_output() -> None:
    params = {"m": Param(ref="ops.train", value="outputs.model"), "lr": Param(value=0.1)}
    assert resolve_params(params, CTX) == {"m": "s3://b/m", "lr": 0.1}
    with pytest.raises(RefError, match=r"param 'x': ops\.train\.outputs\.acc is not available"):
        resolve_params({"x": Param(value="{{ ops.train.outputs.acc }}")}, CTX)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("{{ ops.train.outputs.loss < 0.1 }}", True),
        ("loss < 0.1 and kind == 'full'", True),
        ("not (loss > 1) or false", True),
        ("kind in ['a', 'b']", False),
        ("len(kind) == 4 if kind else none", True),
        ("max(loss, 1) - 1 == 0", True),
        ("ops['train'].status == 'succeeded'", True),
    ],
)
def test_conditions_evaluate(expr: str, expected: bool) -> None:
    assert evaluate(expr, {**CTX, "loss": 0.05, "kind": "full"}) is expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("__import__('os').system('true')", "may be called"),
        ("loss.__class__", "not available"),
        ("2 ** 1000000", "not allowed"),
        ("'a' * 100000000", "too large"),
        ("lambda: 1", "not allowed"),
        ("unknown > 1", "unknown name"),
        ("loss <", "does not parse"),
        ("1 / 0", "fails"),
        ("[x for x in 'ab']", "not allowed"),
    ],
)
def test_conditions_reject_what_is_not_data(expr: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        evaluate(expr, {"loss": 0.05})
