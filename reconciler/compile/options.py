"""The few repo settings compilation depends on, as one small value.

The per-repo config file (`.polyaxon-reconciler.yaml`) has more in it; the daemon maps it to this,
so the compiler stays a pure function of (files, options) and needs no config loader.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass


@dataclass(frozen=True)
class CompileOptions:
    repo: str  # the repo name in OpKeys
    # Directory inside the repo holding hub components (`<hub_dir>/<name>/<tag>.yaml`); its files
    # are library entries, never operations.
    hub_dir: str | None = None
    # urlRef prefix -> directory inside the repo (nothing is fetched from the network).
    url_maps: tuple[tuple[str, str], ...] = ()
    # Globs over paths or operation names opted in for pull-request previews (design.md §7).
    previews: tuple[str, ...] = ()

    def is_library(self, path: str) -> bool:
        if not self.hub_dir:
            return False
        hub = posixpath.normpath(self.hub_dir)
        return posixpath.normpath(path).startswith(hub + "/")

    def is_preview(self, path: str, name: str) -> bool:
        return any(fnmatch.fnmatchcase(path, g) or fnmatch.fnmatchcase(name, g) for g in self.previews)
