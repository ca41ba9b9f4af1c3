"""Run names: deterministic, DNS-safe, and never shared by two operations."""

from __future__ import annotations

import re

from reconciler.model import OpKey, run_name

HASH = "ab" * 32


def test_same_op_spec_and_cause_give_the_same_name() -> None:
    op = OpKey("models", "ops/train.yaml", "train")
    assert run_name(op, HASH, "c1") == run_name(op, HASH, "c1")
    assert re.fullmatch(r"train-abababab-[0-9a-f]{8}", run_name(op, HASH, "c1"))


def test_a_repo_and_its_fork_on_the_same_commit_get_different_names() -> None:
    upstream, fork = OpKey("models", "ops/train.yaml", "train"), OpKey("models-fork", "ops/train.yaml", "train")
    assert run_name(upstream, HASH, "c1") != run_name(fork, HASH, "c1")


def test_two_files_declaring_the_same_op_name_get_different_names() -> None:
    a, b = OpKey("models", "a/train.yaml", "train"), OpKey("models", "b/train.yaml", "train")
    assert run_name(a, HASH, "c1") != run_name(b, HASH, "c1")
