"""Who may run what for a pull request: the base branch's policy, forks, a maintainer's label."""

from __future__ import annotations

import pytest

from reconciler import repo_config as rc
from reconciler.forge.trust import PreviewPolicy, preview_gate


def policy(text: str) -> PreviewPolicy:
    config = rc.parse(text.encode())
    assert isinstance(config, rc.RepoFileConfig), config
    return PreviewPolicy.of(config)


class Labels:
    """The forge's answer, counting how often it was asked."""

    def __init__(self, *names: str) -> None:
        self.names = names
        self.asked = 0

    def __call__(self) -> tuple[str, ...]:
        self.asked += 1
        return self.names


def test_the_defaults_let_nothing_run() -> None:
    default = PreviewPolicy.of(rc.RepoFileConfig())
    assert default == PreviewPolicy((), from_forks=False, require_label=None)
    assert not preview_gate(default, fork=False, labels=Labels()).allowed
    assert not default.names("train")


def test_names_are_the_base_branchs_globs_over_operation_names() -> None:
    p = policy('previews: ["train-*", smoke]\n')
    assert p.names("train-small") and p.names("smoke")
    assert not p.names("evil") and not p.names("smoke-2")


@pytest.mark.parametrize(
    ("config", "fork", "labels", "allowed", "why"),
    [
        ("previews: [smoke]", False, (), True, "allowed"),
        ("previews: [smoke]", True, (), False, "from a fork"),
        ("previews: [smoke]\npreviews_from_forks: true", True, (), True, "allowed"),
        ("previews: [smoke]\npreviews_require_label: ok-to-test", False, (), False, "label `ok-to-test`"),
        ("previews: [smoke]\npreviews_require_label: ok-to-test", False, ("ok-to-test",), True, "allowed"),
        ("previews: [smoke]\npreviews_require_label: ok-to-test", False, ("OK-to-test",), False, "label"),
        # A label does not let a fork in: both keys must agree.
        ("previews: [smoke]\npreviews_require_label: ok-to-test", True, ("ok-to-test",), False, "from a fork"),
        (
            "previews: [smoke]\npreviews_from_forks: true\npreviews_require_label: ok-to-test",
            True,
            ("ok-to-test",),
            True,
            "allowed",
        ),
        ("previews: []\npreviews_from_forks: true", True, (), False, "no operation"),
    ],
)
def test_gate_matrix(config: str, fork: bool, labels: tuple[str, ...], allowed: bool, why: str) -> None:
    gate = preview_gate(policy(config), fork=fork, labels=Labels(*labels))
    assert gate.allowed is allowed
    assert why in gate.reason


def test_labels_are_asked_for_only_when_one_is_required_and_something_would_run() -> None:
    asked = Labels("ok-to-test")
    labelled = policy("previews: [smoke]\npreviews_require_label: ok-to-test")
    preview_gate(policy("previews: [smoke]"), fork=False, labels=asked)
    preview_gate(labelled, fork=False, labels=asked, wanted=False)
    preview_gate(labelled, fork=True, labels=asked)
    assert asked.asked == 0
    preview_gate(labelled, fork=False, labels=asked)
    assert asked.asked == 1


def test_bad_policy_values_are_located_errors() -> None:
    errors = rc.parse(b'previews_from_forks: "yes"\npreviews_require_label: ""\n')
    assert isinstance(errors, list)
    assert [(e.line, e.message.split(":")[0]) for e in errors] == [
        (1, "previews_from_forks"),
        (2, "previews_require_label"),
    ]
