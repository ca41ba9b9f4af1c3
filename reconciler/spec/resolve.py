"""Resolve stage: load what `pathRef`, `hubRef` and `urlRef` point at, recursively.

Nothing is fetched from the network: a hub is a directory (`<dir>/<name>/<tag>.yaml`), and a
urlRef is read only through an explicit mirror (`prefix -> directory`); any other urlRef is an
error, because a daemon that fetches whatever a file names is a daemon anyone with push access
can point at anything.

Files are read through a `Reader`, so the same code resolves from a working tree, from blobs at a
git commit, or from an in-memory dict in tests.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import Located
from reconciler.spec.load import Parsed, load
from reconciler.spec.polyaxonfile import Polyaxonfile

Reader = Callable[[str], bytes | None]  # path -> content, or None when there is no such file


def filesystem_reader(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None


@dataclass
class Resolver:
    hub_dir: str | None = None
    url_maps: list[tuple[str, str]] = field(default_factory=list)
    read: Reader = filesystem_reader
    # Every file that was read while resolving, so incremental compiles know what depends on what.
    touched: set[str] = field(default_factory=set)
    _cache: dict[str, Parsed] = field(default_factory=dict)

    def hub_path(self, ref: str) -> str | None:
        if not self.hub_dir:
            return None
        name = ref.split("/")[-1]
        name, _, tag = name.partition(":")
        return os.path.join(self.hub_dir, name, f"{tag or 'latest'}.yaml")

    def url_path(self, url: str) -> str | None:
        for prefix, folder in self.url_maps:
            if url.startswith(prefix):
                return os.path.join(folder, url[len(prefix) :])
        return None

    def _load(self, path: str) -> Parsed | None:
        if path in self._cache:
            return self._cache[path]
        data = self.read(path)
        self.touched.add(path)
        if data is None:
            return None
        parsed = load(path, data, referenced=True)
        self._cache[path] = parsed
        return parsed

    def resolve(self, parsed: Parsed) -> list[Located]:
        """Attach referenced components in place; errors point at the reference that failed."""
        if parsed.spec is None:
            return parsed.errors
        return self._resolve_spec(parsed, parsed.spec, (), parsed.path, (("path", os.path.normpath(parsed.path)),))

    def _at(self, parsed: Parsed, where: tuple[Any, ...], message: str) -> Located:
        mark = parsed.document.locate(where) if parsed.document else None
        return Located(parsed.path, mark.line if mark else None, mark.column if mark else None, message, "resolve")

    def _target(self, spec: Polyaxonfile, context: str) -> tuple[str, str, str | None, str | None]:
        """(field, written ref, file path or None, why not)."""
        ref = spec.reference
        assert ref is not None
        kind, value = ref
        if kind == "path_ref":
            path = (
                value if os.path.isabs(value) else posixpath.normpath(posixpath.join(posixpath.dirname(context), value))
            )
            return "pathRef", value, path, None
        if kind == "hub_ref":
            hub = self.hub_path(value)
            return "hubRef", value, hub, None if hub else "no hub directory is configured (--hub-dir)"
        if kind == "url_ref":
            mirror = self.url_path(value)
            why = None if mirror else "urlRefs are not fetched; add a mirror with --url-map PREFIX=DIR"
            return "urlRef", value, mirror, why
        return "dagRef", value, None, None

    def _component(
        self, field_name: str, written: str, path: str, chain: tuple[tuple[str, str], ...]
    ) -> Polyaxonfile | str:
        """The component at `path` with its own references resolved, or why not (a message).

        Its value depends only on `path` and the files it reads (`chain` only finds cycles, which
        fail whoever asks), so a subclass may cache successful results."""
        target = self._load(path)
        if target is None:
            return f"cannot resolve {field_name} {written!r}: {path} does not exist"
        if target.spec is None or target.errors:
            first = target.errors[0] if target.errors else None
            return f"{field_name} {written!r} is not valid: {first}"
        component = target.spec.model_copy(deep=True)
        inner = Parsed(target.path, target.document, component)
        nested = self._resolve_spec(inner, component, (), path, chain)
        if nested:
            return f"{field_name} {written!r}: {nested[0]}"
        return component

    def _resolve_spec(
        self,
        parsed: Parsed,
        spec: Polyaxonfile,
        where: tuple[Any, ...],
        context: str,
        chain: tuple[tuple[str, str], ...],
    ) -> list[Located]:
        errors: list[Located] = []
        if spec.component is not None:
            errors += self._resolve_spec(parsed, spec.component, (*where, "component"), context, chain)
        elif spec.reference is not None and spec.reference[0] != "dag_ref":
            field_name, written, path, why = self._target(spec, context)
            ref_where = (*where, field_name)
            if path is None:
                return [self._at(parsed, ref_where, f"cannot resolve {field_name} {written!r}: {why}")]
            key = (field_name, os.path.normpath(path))
            if key in chain or ("path", os.path.normpath(path)) in chain:
                cycle = " -> ".join(v for _, v in (*chain, key))
                return [self._at(parsed, ref_where, f"reference cycle: {cycle}")]
            component = self._component(field_name, written, path, (*chain, key))
            if isinstance(component, str):
                return [self._at(parsed, ref_where, component)]
            spec.component = component
        dag = spec.dag
        if dag is not None:
            for section in ("components", "operations"):
                entries = getattr(dag, section)
                if not isinstance(entries, list):
                    continue
                for i, op in enumerate(entries):
                    op_where = (*where, "run", section, i)
                    errors += self._resolve_spec(parsed, op, op_where, context, chain)
        return errors
