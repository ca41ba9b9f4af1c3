"""The rule tables of tests/unit/spec/rules.py held to Polyaxon 2.18 itself (the oracle).

tests/unit/spec/test_rule_tables.py checks that we give the verdicts of the tables; this checks
that the tables are Polyaxon's verdicts, and that they cover every field of each class that
Polyaxon's models declare (tests/oracle/fields.py reads them in the oracle venv).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.spec.load import SNAKE_SECTIONS
from tests.oracle.oracle import PYTHON, ROOT, Oracle, available
from tests.unit.spec import rules
from tests.unit.spec.rules import CasingRule, DocRule, ParamRule, ScalarRule

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


@pytest.fixture(scope="module")
def polyaxon_models() -> dict[str, Any]:
    out = subprocess.run(
        [str(PYTHON), str(ROOT / "tests" / "oracle" / "fields.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    models: dict[str, Any] = json.loads(out.stdout)
    return models


_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rules")


def polyaxon_valid(oracle: Oracle, workdir: Path, doc: dict[str, Any], files: dict[str, Any] | None = None) -> bool:
    folder = workdir / str(next(_counter))
    folder.mkdir()
    for name, content in (files or {}).items():
        (folder / name).write_text(rules.dump(content))
    path = folder / "op.yaml"
    path.write_text(rules.dump(doc))
    return bool(oracle.verdict(str(path))["valid"])


# --- 1. strict scalar types -----------------------------------------------------------------------


@pytest.mark.parametrize("rule", rules.SCALAR_RULES, ids=lambda r: r.field)
def test_scalar_table_is_polyaxons(rule: ScalarRule, oracle: Oracle, workdir: Path) -> None:
    got = "".join("V" if polyaxon_valid(oracle, workdir, doc) else "I" for _, doc in rule.cases())
    assert got == rule.polyaxon, f"{rule.field}: Polyaxon gives {got}, the table says {rule.kind} = {rule.polyaxon}"


@pytest.mark.parametrize("rule", rules.SEARCH_SPACE_RULES, ids=lambda r: r.label)
def test_search_space_table_is_polyaxons(rule: DocRule, oracle: Oracle, workdir: Path) -> None:
    assert polyaxon_valid(oracle, workdir, rule.doc) == rule.valid


def test_scalar_table_covers_every_numeric_field(polyaxon_models: dict[str, Any]) -> None:
    covered = {rule.field.split("[")[0] for rule in rules.SCALAR_RULES}
    assert covered == set(polyaxon_models["numeric"])


# --- 2. key casing --------------------------------------------------------------------------------


def test_every_model_populates_by_name(polyaxon_models: dict[str, Any]) -> None:
    # So snake_case keys are accepted everywhere below the top level.
    assert polyaxon_models["by_alias_only"] == []
    assert polyaxon_models["models"] > 80


def test_camel_only_sections_are_polyaxons(polyaxon_models: dict[str, Any]) -> None:
    sections = set(polyaxon_models["sections"])
    camel_only = {name: alias for name, alias in polyaxon_models["aliases"].items() if alias in sections}
    assert camel_only == rules.CAMEL_ONLY_SECTIONS == SNAKE_SECTIONS
    # Every other section is one word: the same in both spellings.
    assert all(s in camel_only.values() or rules.snake(s) == s for s in sections)


@pytest.mark.parametrize("rule", rules.CASING_RULES, ids=lambda r: r.label)
def test_casing_table_is_polyaxons(rule: CasingRule, oracle: Oracle, workdir: Path) -> None:
    assert polyaxon_valid(oracle, workdir, rule.doc, rule.files) == rule.valid


@pytest.mark.parametrize("doc", rules.NESTED_CASING_DOCS, ids=lambda d: str(d.get("run", {}).get("kind", d["kind"])))
def test_polyaxon_takes_nested_snake_case_keys(doc: dict[str, Any], oracle: Oracle, workdir: Path) -> None:
    assert polyaxon_valid(oracle, workdir, doc)
    refused = [
        label for label, variant in rules.nested_snake_cases(doc) if not polyaxon_valid(oracle, workdir, variant)
    ]
    assert refused == []


# --- 3. param references --------------------------------------------------------------------------


@pytest.mark.parametrize("rule", rules.PARAM_RULES, ids=lambda r: r.label)
def test_param_table_is_polyaxons(rule: ParamRule, oracle: Oracle, workdir: Path) -> None:
    assert polyaxon_valid(oracle, workdir, rule.doc) == rule.valid


@pytest.mark.parametrize("rule", rules.PARAM_DOC_RULES + rules.PARAM_STRICTER, ids=lambda r: r.label)
def test_param_documents_are_polyaxons(rule: DocRule, oracle: Oracle, workdir: Path) -> None:
    assert polyaxon_valid(oracle, workdir, rule.doc) == rule.valid


# --- 4. event refs across files -------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["ops.train", "ops.nowhere", f"runs.{rules.RUN_UUID}", "train"])
def test_polyaxon_does_not_check_event_refs_outside_a_dag(ref: str, oracle: Oracle, workdir: Path) -> None:
    # Hence our warning for `validate FILE`, and our stricter errors listed in KNOWN_DIFFERENCES.md.
    assert polyaxon_valid(oracle, workdir, rules.subscriber("evaluate", ref))
