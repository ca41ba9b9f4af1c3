"""Files at a commit -> `DesiredState`, recompiling only what a change can affect.

One file is one operation (a DAG file is one operation of kind dag). `kind: component` files and
files under the hub directory are library entries: Polyaxon runs operations, components are the
templates they reference, so a library file yields no `DesiredOp` (its errors are still reported,
and the operations that use it fail to resolve). YAML files that are not polyaxonfiles are skipped.

Incremental: every file remembers the files its resolution read (`pathRef`, `hubRef`, `urlRef`
targets, including ones that did not exist), so after a change only the changed files and the
files that read them are compiled again. The result is the same as a cold compile of the same
files; the tests check that equivalence.

Safety rule 1 lives here: the operations of a file that is invalid at this commit are carried over
from the previous `DesiredState` under their OpKeys and listed in `kept`.
"""

from __future__ import annotations

import gc
import hashlib
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.compile.options import CompileOptions
from reconciler.errors import Located
from reconciler.model import DesiredOp, DesiredState, InvalidFile, Mode, OpKey, spec_hash
from reconciler.spec import FileResult, Resolver, check, check_event_refs, load, looks_like_polyaxonfile
from reconciler.spec.load import Parsed
from reconciler.spec.polyaxonfile import Polyaxonfile
from reconciler.spec.runs import LONG_RUNNING_KINDS


class FileRole(StrEnum):
    OPERATION = "operation"
    LIBRARY = "library"  # `kind: component`, or a file under the hub directory
    SKIPPED = "skipped"  # some other YAML (a Kubernetes manifest, a CI file, ...)


@dataclass(frozen=True)
class FileEntry:
    """What one file compiled to, with what it read; reused as is while neither changes."""

    path: str
    digest: str
    role: FileRole
    errors: tuple[Located, ...]  # the file's own errors; repo-wide checks are redone every compile
    op: DesiredOp | None = None  # as compiled: its commit is the one it was compiled at
    deps: frozenset[str] = frozenset()
    # For the repo-wide event-ref check: a subscriber's parse result (to locate errors), or for
    # other operations a stand-in that carries only the name. Never mutated after compile.
    result: FileResult | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class _Resolved:
    """A referenced component with its own references resolved, and every path that took."""

    component: Polyaxonfile
    touched: frozenset[str]


@dataclass(frozen=True)
class CompileResult:
    desired: DesiredState
    entries: Mapping[str, FileEntry]
    dependents: Mapping[str, frozenset[str]]  # path read -> files whose resolution read it
    options: CompileOptions
    recompiled: frozenset[str] = frozenset()  # files compiled (not reused) by this call
    subscribers: frozenset[str] = frozenset()  # files whose operation has `events`
    # Referenced files as parsed, reused by the next compile while their content is unchanged.
    parsed: Mapping[str, Parsed] = field(default_factory=dict, compare=False, repr=False)
    # Referenced components as resolved, reused while no file they read has changed.
    resolved: Mapping[str, _Resolved] = field(default_factory=dict, compare=False, repr=False)


def mode_of(effective: Mapping[str, Any]) -> Mode:
    """design.md §4: a schedule wins over events, events over the run kind."""
    if effective.get("schedule"):
        return Mode.SCHEDULED
    if effective.get("events"):
        return Mode.SUBSCRIBED
    run = effective.get("run")
    kind = run.get("kind") if isinstance(run, dict) else None
    return Mode.LONG_RUNNING if kind in LONG_RUNNING_KINDS else Mode.ONE_SHOT


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _RecordingResolver(Resolver):
    """Records every path looked up, cached or not, so each file's dependencies are complete.

    A resolved component depends only on its path and the files it read, so it is resolved once
    and shared by every file that references it (in the worst layout, 10,000 references to 50
    components were 10,000 deep copies and resolutions). Shared components are never modified:
    composing reads them, and only the file being resolved gets components attached."""

    def __init__(self, *, resolved: dict[str, _Resolved], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._resolved = resolved

    def _load(self, path: str) -> Parsed | None:
        self.touched.add(posixpath.normpath(path))
        return super()._load(path)

    def _component(
        self, field_name: str, written: str, path: str, chain: tuple[tuple[str, str], ...]
    ) -> Polyaxonfile | str:
        key = posixpath.normpath(path)
        hit = self._resolved.get(key)
        if hit is not None:
            self.touched |= hit.touched
            return hit.component
        outer, self.touched = self.touched, set()
        try:
            component = super()._component(field_name, written, path, chain)
        finally:
            touched, self.touched = self.touched, outer | self.touched
        if not isinstance(component, str):
            # Failures are not kept: their message names the chain that led to them.
            self._resolved[key] = _Resolved(component, frozenset(touched))
        return component


def _reader(files: Mapping[str, bytes]) -> Any:
    def read(path: str) -> bytes | None:
        return files.get(posixpath.normpath(path))

    return read


def _compile_file(
    path: str,
    data: bytes,
    files: Mapping[str, bytes],
    options: CompileOptions,
    commit: str,
    parse_cache: dict[str, Parsed],
    resolved: dict[str, _Resolved],
) -> FileEntry:
    digest = _digest(data)
    parsed = load(path, data)
    result = FileResult(path, parsed=parsed)
    document = parsed.document
    if document is not None and not looks_like_polyaxonfile(document.value):
        return FileEntry(path, digest, FileRole.SKIPPED, ())
    library = options.is_library(path) or (parsed.spec is not None and parsed.spec.kind == "component")
    role = FileRole.LIBRARY if library else FileRole.OPERATION
    if parsed.errors or parsed.spec is None:
        return FileEntry(path, digest, role, tuple(parsed.errors))
    resolver = _RecordingResolver(
        hub_dir=options.hub_dir,
        url_maps=list(options.url_maps),
        read=_reader(files),
        _cache=parse_cache,
        resolved=resolved,
    )
    errors = resolver.resolve(parsed)
    deps = frozenset(resolver.touched - {path})
    if errors or library:
        # A component is checked where it is used: alone, its required inputs have no values.
        return FileEntry(path, digest, role, tuple(errors), deps=deps)
    checked, errors = check(parsed)
    if errors or checked is None:
        return FileEntry(path, digest, role, tuple(errors), deps=deps)
    result.checked = checked
    effective = checked.effective
    run = effective.get("run")
    kind = run.get("kind", "") if isinstance(run, dict) else ""
    key = OpKey(options.repo, path, result.op_name)
    events = effective.get("events")
    op = DesiredOp(
        key=key,
        kind=str(kind),
        mode=mode_of(effective),
        spec_hash=spec_hash(effective),
        effective=effective,
        commit=commit,
        schedule=effective.get("schedule") or None,
        events=tuple(events) if isinstance(events, list) else (),
        preview=options.is_preview(path, key.name),
    )
    # Only a subscriber's parse result is kept (the event-ref check locates its errors in it); for
    # the others only the name matters, and a stand-in is made when the check runs: keeping one per
    # file would hold ~3 KB per operation for the life of the daemon.
    return FileEntry(path, digest, role, (), op=op, deps=deps, result=result if op.events else None)


def _at_commit(op: DesiredOp, commit: str) -> DesiredOp:
    """`op` as of `commit`: a shallow copy, because `dataclasses.replace` (re-running __init__)
    costs more than the rest of an incremental compile when a repo has thousands of files."""
    moved: DesiredOp = object.__new__(DesiredOp)
    moved.__dict__.update(op.__dict__)
    moved.__dict__["commit"] = commit
    return moved


def _dependents(entries: Mapping[str, FileEntry]) -> dict[str, frozenset[str]]:
    index: dict[str, set[str]] = {}
    for path, entry in entries.items():
        for dep in entry.deps:
            index.setdefault(dep, set()).add(path)
    return {dep: frozenset(users) for dep, users in index.items()}


def _affected(seeds: Iterable[str], dependents: Mapping[str, frozenset[str]]) -> set[str]:
    """The seeds and everything whose resolution read them, transitively."""
    out: set[str] = set()
    todo = list(seeds)
    while todo:
        path = todo.pop()
        if path in out:
            continue
        out.add(path)
        todo.extend(dependents.get(path, ()))
    return out


def _event_errors(entries: Mapping[str, FileEntry]) -> dict[str, list[Located]]:
    """Event refs name operations of the repo: a repo-wide check, redone on every compile.

    Only subscribers can get errors, so only their results are copied (the check appends to
    them); the other operations are passed by name.
    """
    copies: dict[str, FileResult] = {}
    others: list[str] = []
    for path in sorted(entries):
        entry = entries[path]
        if entry.op is None:
            continue
        if entry.op.events and entry.result is not None:
            copies[path] = FileResult(path, parsed=entry.result.parsed, checked=entry.result.checked)
        else:
            others.append(entry.op.key.name)
    check_event_refs(copies.values(), others=others)
    return {path: r.errors for path, r in copies.items() if r.errors}


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Compiling a repo allocates many small, long-lived objects (YAML nodes, pydantic models),
    and the cyclic collector rescans them again and again as the heap grows: on 1,000 DAG files it
    was 40% of a cold compile. Nothing here creates cycles that need collecting meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_repo(
    files: Mapping[str, bytes],
    options: CompileOptions,
    commit: str,
    previous: CompileResult | None = None,
    changed: set[str] | None = None,
) -> CompileResult:
    """Compile the watched files of a repo at `commit`.

    `files` holds every file a reference may name (the watched files and the hub directory),
    keyed by path in the repo. With `previous`, files whose content is unchanged and that read no
    changed file are reused; `changed` (paths, e.g. from `git diff --name-only`) skips comparing
    digests. Either way the result equals a cold compile of `files`.
    """
    with _gc_paused():
        return _compile_repo(files, options, commit, previous, changed)


def _compile_repo(
    files: Mapping[str, bytes],
    options: CompileOptions,
    commit: str,
    previous: CompileResult | None,
    changed: set[str] | None,
) -> CompileResult:
    entries: dict[str, FileEntry] = {}
    # Referenced files are parsed once, shared by every file that references them, and reused by
    # the next compile while unchanged; the resolver copies what it attaches, so these values are
    # never modified.
    parse_cache: dict[str, Parsed] = {}
    resolved: dict[str, _Resolved] = {}
    old: Mapping[str, FileEntry] = {}
    removed: set[str] = set()
    if previous is None or previous.options != options:
        todo = set(files)
    else:
        old = previous.entries
        added = {p for p in files if p not in old}
        removed = {p for p in old if p not in files}
        if changed is None:
            modified = {p for p in files if p in old and old[p].digest != _digest(files[p])}
        else:
            modified = {p for p in changed if p in files}
        seeds = added | removed | modified
        todo = _affected(seeds, previous.dependents) & set(files)
        parse_cache.update((p, parsed) for p, parsed in previous.parsed.items() if p in files and p not in seeds)
        resolved.update((p, r) for p, r in previous.resolved.items() if r.touched.isdisjoint(seeds))
        for path in files:
            if path not in todo:
                entries[path] = old[path]
    for path in sorted(todo):
        entries[path] = _compile_file(path, files[path], files, options, commit, parse_cache, resolved)

    # The reverse index and the set of subscribers change only where files were compiled again.
    if not old:
        dependents = _dependents(entries)
        subscribers = frozenset(p for p, e in entries.items() if e.op is not None and e.op.events)
    else:
        assert previous is not None
        dependents = dict(previous.dependents)
        for path in todo | removed:
            before = old[path].deps if path in old else frozenset()
            after = entries[path].deps if path in entries else frozenset()
            for dep in before - after:
                rest = dependents[dep] - {path}
                if rest:
                    dependents[dep] = rest
                else:
                    del dependents[dep]
            for dep in after - before:
                dependents[dep] = dependents.get(dep, frozenset()) | {path}
        again = frozenset(p for p in todo if entries[p].op is not None and entries[p].op.events)  # type: ignore[union-attr]
        subscribers = (previous.subscribers - todo - removed) | again

    late = _event_errors(entries) if subscribers else {}
    ops: dict[OpKey, DesiredOp] = {}
    invalid: dict[str, InvalidFile] = {}
    for path in sorted(entries):
        entry = entries[path]
        errors = entry.errors + tuple(late[path]) if path in late else entry.errors
        if errors:
            invalid[path] = InvalidFile(path, errors)
        elif entry.op is not None:
            ops[entry.op.key] = entry.op if entry.op.commit == commit else _at_commit(entry.op, commit)
    kept: set[OpKey] = set()
    if invalid and previous is not None:
        for key, op in previous.desired.ops.items():
            if key.path in invalid and key not in ops:
                ops[key] = op
                kept.add(key)
        # Files come in path order and hold one op each, so only kept ops need sorting in.
        ops = dict(sorted(ops.items(), key=lambda item: (item[0].repo, item[0].path, item[0].name)))
    desired = DesiredState(repo=options.repo, commit=commit, ops=ops, invalid=invalid, kept=frozenset(kept))
    return CompileResult(
        desired=desired,
        entries=entries,
        dependents=dependents,
        options=options,
        recompiled=frozenset(todo),
        subscribers=subscribers,
        parsed=parse_cache,
        resolved=resolved,
    )
