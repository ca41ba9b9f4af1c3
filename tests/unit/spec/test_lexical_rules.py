"""Polyaxon's lexical rules: strict numbers, lax booleans, camelCase and snake_case, names,
unknown keys; each error at the line and column of the offending node."""

from __future__ import annotations

import textwrap

import pytest

from reconciler.spec import load


def spec_of(text: str):  # type: ignore[no-untyped-def]
    result = load("op.yaml", textwrap.dedent(text))
    assert result.errors == [], [str(e) for e in result.errors]
    assert result.spec is not None
    return result.spec


def first_error(text: str) -> str:
    result = load("op.yaml", textwrap.dedent(text))
    assert result.spec is None and result.errors
    return str(result.errors[0])


def test_numbers_are_strict() -> None:
    message = first_error(
        """\
        kind: component
        termination:
          maxRetries: "3"
        run: {kind: job, container: {image: x}}
        """
    )
    assert message.startswith("op.yaml:3:15:")
    assert "maxRetries" in message


def test_booleans_are_lax() -> None:
    spec = spec_of(
        """\
        kind: component
        plugins: {docker: "yes", shm: "false", auth: 1}
        run: {kind: job, container: {image: x}}
        """
    )
    assert spec.plugins.docker is True
    assert spec.plugins.shm is False
    assert spec.plugins.auth is True


def test_camel_and_snake_case_keys() -> None:
    camel = spec_of("kind: component\ntermination: {maxRetries: 2}\nrun: {kind: job}\n")
    snake = spec_of("kind: component\ntermination: {max_retries: 2}\nrun: {kind: job}\n")
    assert camel.termination.max_retries == snake.termination.max_retries == 2


def test_unknown_key_points_at_the_key() -> None:
    message = first_error(
        """\
        kind: component
        run:
          kind: job
          contianer: {image: x}
        """
    )
    assert message == "op.yaml:4:3: unknown field 'contianer' in run"


def test_name_pattern() -> None:
    message = first_error("kind: component\nname: bad name!\nrun: {kind: job}\n")
    assert message.startswith("op.yaml:2:7:")
    assert "invalid name" in message


def test_references_accepted_where_values_are_typed() -> None:
    spec = spec_of("kind: component\ntermination: {maxRetries: '{{ retries }}'}\nrun: {kind: job}\n")
    assert spec.termination.max_retries == "{{ retries }}"


def test_unknown_run_kind() -> None:
    message = first_error("kind: component\nrun: {kind: sparkapp}\n")
    assert message.startswith("op.yaml:2:13: run.kind: unsupported run.kind 'sparkapp'")


def test_hyperopt_points_to_tpe() -> None:
    message = first_error(
        """\
        kind: operation
        hubRef: x
        matrix:
          kind: hyperopt
          numRuns: 2
          params: {lr: {kind: choice, value: [1, 2]}}
        """
    )
    assert message.startswith("op.yaml:4:9:")
    assert "renamed 'tpe'" in message


def test_container_unknown_top_level_key_is_an_error() -> None:
    message = first_error("kind: component\nrun:\n  kind: job\n  container: {image: x, imagePulPolicy: Always}\n")
    assert (
        message == "op.yaml:4:25: run.container.imagePulPolicy: unknown field 'imagePulPolicy' (Kubernetes V1Container)"
    )


@pytest.mark.parametrize(
    "kind",
    [
        "job",
        "service",
        "dag",
        "tfjob",
        "pytorchjob",
        "mpijob",
        "mxjob",
        "xgbjob",
        "rayjob",
        "raycluster",
        "daskjob",
        "daskcluster",
        "sparkjob",
        "notifier",
        "cleaner",
        "tuner",
    ],
)
def test_every_run_kind_parses(kind: str) -> None:
    spec = spec_of(f"kind: component\nrun: {{kind: {kind}}}\n")
    assert spec.run_kind == kind


def test_distributed_replicas() -> None:
    spec = spec_of(
        """\
        kind: component
        run:
          kind: mxjob
          scheduler: {replicas: 1, container: {image: mx}}
          worker: {replicas: 4, container: {image: mx}}
        """
    )
    assert spec.run.worker.replicas == 4
    assert first_error("kind: component\nrun: {kind: xgbjob, worker: {replicas: '4'}}\n").startswith("op.yaml:2:")
