"""The whole pipeline for a set of files: parse -> resolve -> check/compile, with located errors.

Also the checks that need more than one file: event refs (`ops.<name>`) outside a DAG must name an
operation among the files validated together (in the daemon: the repo; for files named one by one,
an operation none of them defines is a warning), and subscriptions must not form a cycle.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import Located
from reconciler.spec import k8s
from reconciler.spec.check import Checked, check, find_cycle
from reconciler.spec.load import Parsed, load, looks_like_polyaxonfile
from reconciler.spec.resolve import Reader, Resolver, filesystem_reader


@dataclass
class FileResult:
    path: str
    parsed: Parsed | None = None
    checked: Checked | None = None
    errors: list[Located] = field(default_factory=list)
    warnings: list[Located] = field(default_factory=list)
    skipped: str | None = None  # why a file that is not a polyaxonfile was skipped

    @property
    def valid(self) -> bool:
        return not self.errors and self.skipped is None

    @property
    def op_name(self) -> str:
        spec = self.parsed.spec if self.parsed else None
        if spec is not None and spec.name:
            return spec.name
        return os.path.splitext(os.path.basename(self.path))[0]


def validate_file(path: str, data: bytes, resolver: Resolver, *, require_signature: bool = False) -> FileResult:
    result = FileResult(path)
    parsed = load(path, data)
    result.parsed = parsed
    if require_signature and parsed.document is not None and not looks_like_polyaxonfile(parsed.document.value):
        result.skipped = "not a polyaxonfile"
        return result
    if parsed.errors or parsed.spec is None:
        result.errors = parsed.errors
        return result
    if parsed.document is not None:
        for where, message in k8s.lint(parsed.document.value):
            mark = parsed.document.locate(where)
            dotted = ".".join(str(p) for p in where)
            result.warnings.append(
                Located(
                    path,
                    mark.line if mark else None,
                    mark.column if mark else None,
                    f"{dotted}: {message}",
                    "lint",
                )
            )
    errors = resolver.resolve(parsed)
    if errors:
        result.errors = errors
        return result
    checked, errors = check(parsed)
    result.checked = checked
    result.errors = errors
    return result


def _event_refs(result: FileResult) -> list[tuple[str, tuple[Any, ...]]]:
    spec = result.parsed.spec if result.parsed else None
    if spec is None or not isinstance(spec.events, list):
        return []
    return [(e.ref, ("events", i, "ref")) for i, e in enumerate(spec.events)]


def check_event_refs(
    results: Iterable[FileResult], *, partial: Collection[str] = (), others: Collection[str] = ()
) -> None:
    """Event refs outside a DAG must name an operation validated alongside, without cycles.

    `results` and `others` (the names of more valid operations, which subscribe to nothing: the
    compiler passes those as names only) should be a whole repository (the daemon, `plan`,
    `validate DIR`): a ref to an operation none of them defines is an error. The paths in
    `partial` were validated without the rest of their repository (`validate FILE`), so the
    operation they name may live in a file that was not given: for them that is a warning naming
    the operation, not an error.
    """
    results = [r for r in results if r.valid]
    names = {r.op_name: r for r in results}
    known = names.keys() | set(others)
    partial = set(partial)
    graph: dict[str, set[str]] = {}
    for result in results:
        for ref, where in _event_refs(result):
            if not ref.startswith(("ops.", "runs.")):
                result.errors.append(_at(result, where, f"event ref {ref!r} must be ops.<name> or runs.<uuid>"))
                continue
            if ref.startswith("runs."):
                continue
            target = ref[4:]
            if target not in known:
                if result.path in partial:
                    message = (
                        f"event ref {ref!r}: no operation {target!r} among the files given; "
                        "not checked (it may live in another file: validate the whole directory to check it)"
                    )
                    result.warnings.append(_at(result, where, message))
                else:
                    result.errors.append(_at(result, where, f"event ref {ref!r} names no operation in this repository"))
                continue
            if target == result.op_name:
                result.errors.append(_at(result, where, f"operation {target!r} subscribes to its own events"))
                continue
            graph.setdefault(result.op_name, set()).add(target)
    cycle = find_cycle(graph)
    if cycle:
        first = names[cycle[0]]
        where = next((w for ref, w in _event_refs(first) if ref == f"ops.{cycle[1]}"), ())
        first.errors.append(_at(first, where, f"event subscriptions form a cycle: {' -> '.join(cycle)}"))


def _at(result: FileResult, where: tuple[Any, ...], message: str) -> Located:
    document = result.parsed.document if result.parsed else None
    mark = document.locate(where) if document else None
    return Located(result.path, mark.line if mark else None, mark.column if mark else None, message, "check")


POLYAXONFILE_SUFFIXES = (".yaml", ".yml", ".json")


def discover(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """Files named on the command line, and files found by walking directories (skippable)."""
    explicit: list[str] = []
    walked: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                walked += [
                    os.path.join(root, f)
                    for f in sorted(files)
                    if f.endswith(POLYAXONFILE_SUFFIXES) and not f.startswith(".")
                ]
        else:
            explicit.append(path)
    return explicit, walked


def validate_paths(
    paths: Iterable[str],
    *,
    hub_dir: str | None = None,
    url_maps: list[tuple[str, str]] | None = None,
    read: Reader = filesystem_reader,
) -> list[FileResult]:
    explicit, walked = discover(paths)
    resolver = Resolver(hub_dir=hub_dir, url_maps=url_maps or [], read=read)
    results: list[FileResult] = []
    for path, require in [(p, False) for p in explicit] + [(p, True) for p in walked]:
        data = read(path)
        if data is None:
            results.append(FileResult(path, errors=[Located(path, None, None, "no such file", "parse")]))
            continue
        results.append(validate_file(path, data, resolver, require_signature=require))
    # Files named one by one may subscribe to operations in files that were not named.
    check_event_refs(results, partial=explicit)
    return results
