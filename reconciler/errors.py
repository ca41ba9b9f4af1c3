"""Errors as values that point at a place in a file.

Every layer that reads user files (the per-repo config, polyaxonfiles) reports problems the same
way, so commit statuses, logs and the API can show `file:line:col: message` without knowing which
layer found the problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Located:
    """A message about a place in a file; `line` and `column` are 1-based, None when unknown."""

    path: str
    line: int | None
    column: int | None
    message: str
    # Which layer found it ("repo-config", "yaml", "spec", "compile"); not part of the text form.
    stage: str | None = None

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


def first_line(errors: Iterable[Located]) -> str | None:
    """The first error as one line, ordered by position: what a commit status has room for."""
    ordered = sorted(errors, key=lambda e: (e.path, e.line or 0, e.column or 0))
    return str(ordered[0]) if ordered else None


def render(errors: Iterable[Located]) -> str:
    """All errors, one per line, in file order."""
    ordered = sorted(errors, key=lambda e: (e.path, e.line or 0, e.column or 0))
    return "\n".join(str(e) for e in ordered)
