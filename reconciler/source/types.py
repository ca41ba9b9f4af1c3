"""Plain values the source adapter hands to the rest of the reconciler."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Revision:
    """A fetched head: the commit a ref pointed to when we looked."""

    sha: str
    committed_at: datetime  # timezone-aware, UTC
    ref: str  # full ref name, e.g. refs/heads/main, refs/tags/v1, refs/pull/7/head


@dataclass(frozen=True)
class ChangeSet:
    """Files that differ between two commits. A rename is a delete plus an add (OpKeys include
    the path, so a renamed file is a different operation)."""

    added: frozenset[str] = frozenset()
    modified: frozenset[str] = frozenset()
    deleted: frozenset[str] = frozenset()

    @property
    def paths(self) -> frozenset[str]:
        return self.added | self.modified | self.deleted

    def __bool__(self) -> bool:
        return bool(self.paths)

    def only(self, keep: Callable[[str], bool]) -> ChangeSet:
        """The same change set restricted to paths for which `keep` is true."""
        return ChangeSet(
            frozenset(filter(keep, self.added)),
            frozenset(filter(keep, self.modified)),
            frozenset(filter(keep, self.deleted)),
        )


@dataclass(frozen=True)
class SkippedFile:
    path: str
    size: int
    reason: str


@dataclass(frozen=True)
class FilesAt:
    """Watched files at a commit, and the watched paths that were left out and why."""

    files: Mapping[str, bytes] = field(default_factory=dict)
    skipped: tuple[SkippedFile, ...] = ()
