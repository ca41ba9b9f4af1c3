"""Errors as values with a location, shared by the spec, the repo config and the planner.

A `Located` prints like a compiler diagnostic, `path:line:col: message`, so editors and CI logs
link straight to the offending node.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Located:
    path: str
    line: int | None
    column: int | None
    message: str
    stage: str | None = None

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"
