"""Daemon settings: the namespaces a repo may use follow the backend."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reconciler.config import Settings


def test_kubernetes_namespaces_are_the_daemons_first_then_the_others_once() -> None:
    settings = Settings(backend="kubernetes", kubernetes={"namespace": "a", "namespaces": ["b", "a", "c"]})  # type: ignore[arg-type]
    assert settings.run_namespaces == ("a", "b", "c")


def test_local_runs_have_no_namespace_to_restrict() -> None:
    assert Settings(backend="local", kubernetes={"namespaces": ["b"]}).run_namespaces is None  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["Upper", "under_score", "-dash", "x" * 64, ""])
def test_namespace_names_are_dns_labels(bad: str) -> None:
    with pytest.raises(ValidationError, match="not a Kubernetes namespace name"):
        Settings(kubernetes={"namespaces": [bad]})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not a Kubernetes namespace name"):
        Settings(kubernetes={"namespace": bad})  # type: ignore[arg-type]
