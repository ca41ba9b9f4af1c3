"""Who may make the daemon run what for a pull request (design.md §5 rule 8 and §7).

A pull request is code written by someone else. Validating it and planning it only read files,
so every pull request gets those. Running it is a decision that belongs to the people who can
change the base branch, so it is read from the base branch's `.polyaxon-reconciler.yaml` at the
pull request's base commit and from nothing the pull request carries: not its own repo config,
not a `preview` tag in its files, not the operations it adds.

Three keys of that base config decide, in this order:

- `previews`: the operation names (or globs over names) that may run as previews. Empty, the
  default: nothing runs.
- `previews_from_forks` (default false): a pull request whose head lives in another repository
  (a fork) runs nothing unless this is true, as Atlantis does without `--allow-fork-prs`.
- `previews_require_label` (default none): when set, a pull request runs nothing until a
  maintainer puts this label on it. The labels are read back from the forge's API when the
  check runs, never taken from the webhook's payload.

Pure: the policy and the pull request's facts in, a verdict with its reason out. The labels are
asked for through a callable, so a forge call is made only when a label is required.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reconciler import globs
from reconciler.repo_config import RepoFileConfig


@dataclass(frozen=True)
class PreviewPolicy:
    """What the base branch allows; the default allows nothing."""

    patterns: tuple[str, ...] = ()
    from_forks: bool = False
    require_label: str | None = None

    @classmethod
    def of(cls, base: RepoFileConfig) -> PreviewPolicy:
        return cls(tuple(base.previews), base.previews_from_forks, base.previews_require_label)

    def names(self, op_name: str) -> bool:
        """Is `op_name` opted in for previews by the base branch?"""
        return globs.match_any(self.patterns, op_name)


@dataclass(frozen=True)
class PreviewGate:
    allowed: bool
    reason: str  # why not (or "allowed"), shown in the plan comment and the logs


def preview_gate(
    policy: PreviewPolicy, *, fork: bool, labels: Callable[[], Iterable[str]], wanted: bool = True
) -> PreviewGate:
    """May this pull request run its opted-in operations as previews?

    `wanted` is False when none of its operations is opted in (nothing to decide, and no label
    lookup is made). `labels` returns the pull request's labels as the forge has them now.
    """
    if not wanted or not policy.patterns:
        return PreviewGate(False, "no operation of this pull request is listed in the base branch's `previews`")
    if fork and not policy.from_forks:
        return PreviewGate(
            False, "pull request from a fork: previews need `previews_from_forks: true` in the base branch's config"
        )
    if policy.require_label is not None and policy.require_label not in set(labels()):
        return PreviewGate(False, f"waiting for a maintainer to add the label `{policy.require_label}`")
    return PreviewGate(True, "allowed")


__all__ = ["PreviewGate", "PreviewPolicy", "preview_gate"]
