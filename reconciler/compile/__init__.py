"""Compile: the polyaxonfiles of a repo at a commit -> `DesiredState` (pure, incremental)."""

from reconciler.compile.options import CompileOptions
from reconciler.compile.repo import CompileResult, FileEntry, FileRole, compile_repo, mode_of

__all__ = ["CompileOptions", "CompileResult", "FileEntry", "FileRole", "compile_repo", "mode_of"]
