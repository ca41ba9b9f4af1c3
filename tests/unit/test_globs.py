"""Glob semantics shared by watch/ignore lists and preview opt-ins."""

from __future__ import annotations

import pytest

from reconciler.globs import glob_problem, match


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("**/*.yaml", "a.yaml", True),
        ("**/*.yaml", "x/y/a.yaml", True),
        ("**/*.yaml", "a.yml", False),
        ("*.yaml", "a.yaml", True),
        ("*.yaml", "x/a.yaml", False),  # no implicit any-depth
        ("ops/**", "ops/a/b.json", True),
        ("ops/**", "opsx/a.json", False),
        ("ops/**/train.yaml", "ops/train.yaml", True),
        ("ops/**/train.yaml", "ops/a/b/train.yaml", True),
        ("ops/*/train.yaml", "ops/a/b/train.yaml", False),
        ("?.yaml", "a.yaml", True),
        ("?.yaml", "ab.yaml", False),
        ("[ab].yaml", "b.yaml", True),
        ("[!ab].yaml", "c.yaml", True),
        ("[!ab].yaml", "a.yaml", False),
        ("**/.*", ".pre-commit-config.yaml", True),
        ("**/.*/**", ".github/workflows/ci.yml", True),
        ("**/.*/**", "ops/train.yaml", False),
        ("a+b(c).yaml", "a+b(c).yaml", True),  # regex metacharacters are literal
        ("train-*", "train-resnet", True),
        ("train-*", "serve-resnet", False),
    ],
)
def test_match(pattern, path, expected) -> None:
    assert match(pattern, path) is expected


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("", "empty"),
        ("/abs/*.yaml", "leading '/'"),
        ("../x/*.yaml", "'..'"),
        ("a//b", "empty"),
        ("a\\b", "'/' separators"),
        ("[ab.yaml", "unclosed"),
    ],
)
def test_invalid_globs(pattern, problem) -> None:
    assert problem in (glob_problem(pattern) or "")


def test_valid_glob_has_no_problem() -> None:
    assert glob_problem("ops/**/[a-z]*.y?ml") is None
