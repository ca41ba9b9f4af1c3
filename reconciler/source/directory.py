"""A plain directory read as if it were a commit (`reconciler plan --repo DIR` outside git).

It answers the same questions as a git commit reader (`files_at`, `read_file`, `repo_config`,
`changed_files`) with the same filters (watch and ignore globs, size limit, symbolic links left
out and reported), so `reconciler.loader.load_commit` treats both alike. Its one "commit" is
`worktree`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from reconciler import globs
from reconciler import repo_config as rc
from reconciler.errors import Located
from reconciler.source.git import DEFAULT_MAX_FILE_BYTES
from reconciler.source.types import ChangeSet, FilesAt, SkippedFile

WORKTREE = "worktree"


class DirectoryReader:
    def __init__(self, name: str, root: Path, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.name = name
        self.root = Path(root)
        self.max_file_bytes = max_file_bytes

    def close(self) -> None:
        pass

    def resolve(self, revision: str) -> str:
        return WORKTREE

    def _walk(self) -> list[str]:
        found = []
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if d != ".git")
            for name in sorted(names):
                found.append(Path(folder, name).relative_to(self.root).as_posix())
        return found

    def files_at(self, sha: str, patterns: Sequence[str], *, ignore: Sequence[str] = ()) -> FilesAt:
        files: dict[str, bytes] = {}
        skipped: list[SkippedFile] = []
        for path in self._walk():
            if not globs.match_any(patterns, path) or globs.match_any(ignore, path):
                continue
            full = self.root / path
            if full.is_symlink():
                skipped.append(SkippedFile(path, 0, "symbolic link"))
                continue
            size = full.stat().st_size
            if size > self.max_file_bytes:
                skipped.append(SkippedFile(path, size, f"larger than {self.max_file_bytes} bytes"))
                continue
            files[path] = full.read_bytes()
        return FilesAt(files, tuple(skipped))

    def read_file(self, sha: str, path: str) -> bytes | None:
        full = self.root / path
        if full.is_symlink() or not full.is_file() or self.root.resolve() not in full.resolve().parents:
            return None
        return full.read_bytes()

    def repo_config(self, sha: str) -> rc.RepoFileConfig | list[Located]:
        return rc.parse(self.read_file(sha, rc.FILENAME))

    def changed_files(self, old_sha: str | None, new_sha: str) -> ChangeSet:
        return ChangeSet(added=frozenset(self._walk()))
