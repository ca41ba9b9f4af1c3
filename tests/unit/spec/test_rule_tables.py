"""Our validator against the rule tables of tests/unit/spec/rules.py (Polyaxon 2.18's rules of
strict scalars, key casing and param references; tests/oracle/test_rule_tables.py holds the same
tables to Polyaxon itself)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.spec import FileResult, Resolver, validate_file
from tests.unit.spec import rules
from tests.unit.spec.rules import CasingRule, DocRule, ParamRule, ScalarRule


def validate(doc: dict[str, Any], files: dict[str, Any] | None = None) -> FileResult:
    texts = {name: rules.dump(content).encode() for name, content in (files or {}).items()}
    data = rules.dump(doc).encode()
    return validate_file("op.yaml", data, Resolver(read=texts.get))


def verdicts(rule: ScalarRule) -> str:
    return "".join("V" if validate(doc).valid else "I" for _, doc in rule.cases())


@pytest.mark.parametrize("rule", rules.SCALAR_RULES, ids=lambda r: r.field)
def test_scalar_fields_accept_what_polyaxon_accepts(rule: ScalarRule) -> None:
    values = ", ".join(map(repr, rules.VALUES))
    assert verdicts(rule) == rule.expected, f"{rule.field} ({rule.kind}) with {values}"


def test_every_scalar_kind_is_used() -> None:
    assert {r.kind for r in rules.SCALAR_RULES} == set(rules.KINDS)


@pytest.mark.parametrize("rule", rules.SEARCH_SPACE_RULES, ids=lambda r: r.label)
def test_search_spaces(rule: DocRule) -> None:
    result = validate(rule.doc)
    assert result.valid == rule.valid, [str(e) for e in result.errors]


def test_a_quoted_count_is_located_and_explained() -> None:
    [error] = validate(rules.matrix("random", numRuns="5")).errors
    assert error.line is not None
    assert "numRuns" in error.message and "not text" in error.message


@pytest.mark.parametrize("rule", rules.CASING_RULES, ids=lambda r: r.label)
def test_key_casing(rule: CasingRule) -> None:
    result = validate(rule.doc, rule.files)
    assert result.valid == rule.valid, [str(e) for e in result.errors]


def test_every_camel_only_section_is_a_field_alias() -> None:
    from reconciler.spec.load import SNAKE_SECTIONS

    assert SNAKE_SECTIONS == rules.CAMEL_ONLY_SECTIONS


def test_a_snake_case_section_is_located_at_its_key() -> None:
    text = (
        "kind: operation\ncomponent:\n  run: {kind: job, container: {image: x}}\nrun_patch:\n  container: {image: y}\n"
    )
    [error] = validate_file("op.yaml", text.encode(), Resolver()).errors
    assert (error.line, error.column) == (4, 1)
    assert "'run_patch'" in error.message and "'runPatch'" in error.message


@pytest.mark.parametrize("doc", rules.NESTED_CASING_DOCS, ids=lambda d: str(d.get("run", {}).get("kind", d["kind"])))
def test_nested_keys_take_both_spellings(doc: dict[str, Any]) -> None:
    assert validate(doc).valid
    variants = rules.nested_snake_cases(doc)
    assert variants
    refused = [label for label, variant in variants if not validate(variant).valid]
    assert refused == []


@pytest.mark.parametrize("rule", rules.PARAM_RULES, ids=lambda r: r.label)
def test_param_references(rule: ParamRule) -> None:
    result = validate(rule.doc)
    assert result.valid == rule.valid, [str(e) for e in result.errors]


@pytest.mark.parametrize("rule", rules.PARAM_DOC_RULES, ids=lambda r: r.label)
def test_param_reference_documents(rule: DocRule) -> None:
    result = validate(rule.doc)
    assert result.valid == rule.valid, [str(e) for e in result.errors]


@pytest.mark.parametrize("rule", rules.PARAM_STRICTER, ids=lambda r: r.label)
def test_param_references_we_refuse_on_purpose(rule: DocRule) -> None:
    assert rule.valid  # Polyaxon accepts these (KNOWN_DIFFERENCES.md)
    assert not validate(rule.doc).valid


def test_every_param_rule_has_an_example() -> None:
    numbered = {r.rule for r in rules.PARAM_RULES}
    numbered |= {int(r.label.split(":")[0].split()[1]) for r in rules.PARAM_DOC_RULES if r.label.startswith("rule ")}
    assert numbered == set(range(1, 17))


def test_a_dag_param_error_is_located_at_the_param() -> None:
    text = rules.dump(rules.param_doc("dag", "input", "dag", "uuid"))
    [error] = validate_file("op.yaml", text.encode(), Resolver()).errors
    assert error.line is not None
    # The param's mapping `x: {ref: dag, value: uuid}` starts at its first key.
    assert text.splitlines()[error.line - 1].strip() == "ref: dag", (error, text)
    assert "'x'" in error.message and "uuid" in error.message
