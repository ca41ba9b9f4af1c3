"""Check stage: what only the whole, resolved operation can tell.

Params against the inputs and outputs they fill (required inputs, types, undeclared params), a
run to execute after composing, and for DAGs: unique op names, components that exist, and a graph
of dependencies, param refs and event refs that is acyclic and refers only to its own ops.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from reconciler.errors import Located
from reconciler.spec.compose import ComposeError, compose
from reconciler.spec.io import IO, Param
from reconciler.spec.load import Parsed, located_from_validation
from reconciler.spec.params import substitute_params
from reconciler.spec.polyaxonfile import Polyaxonfile
from reconciler.spec.refs import (
    EMPTY,
    Context,
    Typed,
    entity_of,
    is_template,
    join_value_error,
    ref_form_error,
)
from reconciler.spec.sections import EventTrigger
from reconciler.spec.types import TypeCheckError, check_value

log = logging.getLogger(__name__)

_TEMPLATE_OPS = re.compile(r"{{\s*ops\.([-a-zA-Z0-9_]+)")


class CheckError(ValueError):
    def __init__(self, message: str, where: tuple[Any, ...] = (), stage: str = "check") -> None:
        super().__init__(message)
        self.where = where
        self.stage = stage


@dataclass
class Checked:
    """The effective operation of a file that passed every stage."""

    effective: dict[str, Any]
    spec: Polyaxonfile


def upstream_of_param(param: Param) -> str | None:
    """The DAG operation a param takes its value from: `ref: ops.<name>`, or a `{{ ops.<name>... }}`
    template in its value (the scheduler waits for that op too, so it is an edge here as well)."""
    if param.ref:
        return entity_of(param.ref)
    if isinstance(param.value, str):
        match = _TEMPLATE_OPS.search(param.value)
        if match:
            return match.group(1)
    return None


def upstream_of_event(event: EventTrigger) -> str | None:
    """The DAG operation an event trigger listens to (`ref: ops.<name>`), an upstream edge."""
    return entity_of(event.ref)


def _requires_params(inputs: list[IO], outputs: list[IO]) -> bool:
    for io in inputs:
        if not io.is_optional and not io.delay_validation:
            return True
    for io in outputs:
        delay = io.delay_validation if io.delay_validation is not None else True
        if not io.is_optional and not delay:
            return True
    return False


def _matrix_covers(matrix: Any, name: str) -> bool:
    if matrix is None:
        return False
    if getattr(matrix, "kind", None) == "mapping":
        values = matrix.values
        return isinstance(values, str) or bool(values and name in values[0])
    params = getattr(matrix, "params", None)
    if isinstance(params, dict) and name in params:
        return True
    resource = getattr(matrix, "resource", None)
    return resource is not None and resource.name == name


def _join_params(op: Polyaxonfile) -> dict[str, Param]:
    """Params the joins add (those not given directly); every join needs its params mapping."""
    out: dict[str, Param] = {}
    for i, join in enumerate(op.joins if isinstance(op.joins, list) else []):
        if not isinstance(join.params, dict):
            raise CheckError(
                "a join needs params: what to collect from the joined runs (e.g. {metrics: {value: outputs.loss}})",
                ("joins", i),
            )
        out.update(join.params)
    return out


def _param_form(name: str, param: Param, *, join: bool, suffix: str) -> None:
    """Rules 2-11 of refs.py: the form of a referencing param, declared or not."""
    if join:
        error = join_value_error(param.value)
    elif param.ref is not None and isinstance(param.value, str):
        error = ref_form_error(param.ref, param.value)
    else:
        return
    if error:
        raise CheckError(f"param {name!r}: {error}{suffix}", ("params", name))


def check_params(op: Polyaxonfile, *, label: str = "", context: Context = EMPTY) -> None:
    """Polyaxon's rules for params of a compiled (non-template) operation.

    `context` is what refs may name: the DAG's, for an operation of a DAG; nothing at the top level.
    """
    inputs = op.inputs or []
    outputs = op.outputs or []
    params: dict[str, Param] = dict(op.params or {})
    # Join params take their values from the joined runs (`artifacts.x`, `outputs.y`).
    joined = _join_params(op)
    join_params = set(joined) - set(params)
    params.update({k: joined[k] for k in join_params})
    suffix = f" ({label})" if label else ""
    if _requires_params(inputs, outputs) and not params and op.matrix is None:
        required = [io.name for io in inputs if not io.is_optional and not io.delay_validation]
        raise CheckError(
            f"required inputs have no value: {', '.join(required) or 'outputs'}; pass them as params{suffix}",
            ("inputs",),
        )
    declared = {io.name for io in [*inputs, *outputs]}
    for name, param in params.items():
        if name in declared or name not in join_params:
            _param_form(name, param, join=name in join_params, suffix=suffix)
    processed: set[str] = set()
    for io in inputs:
        if io.name in params:
            _check_param_value(io, params[io.name], context, suffix, join=io.name in join_params)
            processed.add(io.name)
        elif _matrix_covers(op.matrix, io.name):
            continue
        elif not (io.is_optional or io.delay_validation):
            raise CheckError(f"input {io.name!r} is required and no param gives it a value{suffix}", ("inputs",))
    for io in outputs:
        if io.name in params:
            # Outputs are checked without a context, even in a DAG (Polyaxon's rule).
            _check_param_value(io, params[io.name], EMPTY, suffix, join=io.name in join_params)
            processed.add(io.name)
    for name, param in params.items():
        if name in processed:
            continue
        if param.context_only is False:
            raise CheckError(f"param {name!r} has no matching input or output{suffix}", ("params", name))
        if op.strict_params and param.context_only is not True:
            raise CheckError(
                f"param {name!r} is not declared (strictParams); declare an input/output or set "
                f"contextOnly: true{suffix}",
                ("params", name),
            )


def _check_param_value(io: IO, param: Param, context: Context, suffix: str, *, join: bool) -> None:
    where = ("params", io.name)
    if join:
        # Rule 12: a join gives one value per joined run.
        if not io.is_list and io.type != "artifacts":
            raise CheckError(
                f"param {io.name!r} takes a list from a join, but the {io.type} input is not a list "
                f"(isList: true){suffix}",
                where,
            )
        return
    if param.ref is not None:
        missing = context.missing(param.ref, str(param.value), io.type, io.is_list)
        if missing:
            raise CheckError(f"param {io.name!r} {missing}{suffix}", where)
        return
    if is_template(param.value) or io.type is None:
        return
    if param.value is None:
        if io.is_optional:
            return
        raise CheckError(f"param {io.name!r} has no value and the input is not optional{suffix}", where)
    try:
        check_value(io.type, param.value, is_list=bool(io.is_list), validation=io.validation, options=io.options)
    except TypeCheckError as e:
        raise CheckError(f"param {io.name!r}: {e}{suffix}", where) from None


def _validated(effective: dict[str, Any]) -> Polyaxonfile:
    return Polyaxonfile.model_validate(effective)


# What `{{ globals.* }}` offers each op (Polyaxon's GLOBALS_CONTEXTS).
GLOBALS = (
    "owner_name",
    "project_name",
    "project_unique_name",
    "project_uuid",
    "run_info",
    "name",
    "uuid",
    "status",
    "namespace",
    "iteration",
    "context_path",
    "artifacts_path",
    "created_at",
    "compiled_at",
    "schedule_at",
    "started_at",
    "finished_at",
    "duration",
    "cloning_kind",
    "original_uuid",
    "is_independent",
)


_STR, _DICT = Typed("str"), Typed("dict")
_OP_SECTIONS = (("inputs", _DICT), ("outputs", _DICT), ("globals", _STR), ("artifacts", _STR), ("io", _STR))


def _dag_context(ops: dict[str, Polyaxonfile], dag_inputs: list[IO]) -> Context:
    """Every `<ref>.<value>` a param may name inside the DAG, with its type (Polyaxon's context)."""
    entries: dict[str, Typed] = {f"dag.globals.{g}": _STR for g in GLOBALS}
    entries.update({"dag.inputs": _DICT, "dag.globals": _STR, "dag.artifacts": _STR})
    for io in dag_inputs:
        entries[f"dag.inputs.{io.name}"] = Typed(io.type, io.is_list)
    for name, op in ops.items():
        for section, ios in (("outputs", op.outputs or []), ("inputs", op.inputs or [])):
            for io in ios:
                entries[f"ops.{name}.{section}.{io.name}"] = Typed(io.type, io.is_list)
                if io.type == "artifacts":
                    entries[f"ops.{name}.artifacts.{io.name}"] = Typed(io.type, io.is_list)
        for g in GLOBALS:
            entries[f"ops.{name}.globals.{g}"] = _STR
        for section, typed in _OP_SECTIONS:
            entries[f"ops.{name}.{section}"] = typed
    return Context(entries)


def check_dag(spec_run: Any, where: tuple[Any, ...], dag_inputs: list[IO] | None = None) -> None:
    dag_inputs = dag_inputs or []
    operations = spec_run.operations
    if isinstance(operations, str):
        return
    if not operations:
        raise CheckError("the DAG has no operations", (*where, "operations"))
    components: dict[str, Polyaxonfile] = {}
    for i, component in enumerate(spec_run.components if isinstance(spec_run.components, list) else []):
        if not component.name:
            raise CheckError("every DAG component needs a name", (*where, "components", i))
        if component.name in components:
            raise CheckError(f"the DAG has two components named {component.name!r}", (*where, "components", i, "name"))
        components[component.name] = component
    names: dict[str, int] = {}
    effective_ops: dict[str, Polyaxonfile] = {}
    for i, op in enumerate(operations):
        op_where = (*where, "operations", i)
        if not op.name:
            raise CheckError("every DAG operation needs a name", op_where)
        if op.name in names:
            raise CheckError(f"the DAG has two operations named {op.name!r}", (*op_where, "name"))
        names[op.name] = i
        try:
            effective = compose(op, is_dag_node=True, components=components)
        except ComposeError as e:
            raise CheckError(str(e), (*op_where, *e.where)) from None
        if effective.get("run") is None:
            raise CheckError(f"DAG operation {op.name!r} has no component to run", op_where)
        try:
            effective_ops[op.name] = _validated(effective)
        except ValidationError as e:
            raise CheckError(f"DAG operation {op.name!r} does not compile: {e.errors()[0]['msg']}", op_where) from None
    upstream: dict[str, set[str]] = {}
    for name, op in effective_ops.items():
        # Edges: dependencies, params with `ref: ops.<name>` and event refs `ops.<name>`, of the
        # operation as composed (a component's params and events count too).
        ups = set(op.dependencies) if isinstance(op.dependencies, list) else set()
        for param in (op.params or {}).values():
            ref = upstream_of_param(param)
            if ref is not None:
                ups.add(ref)
        for event in op.events if isinstance(op.events, list) else []:
            target = upstream_of_event(event)
            if target is not None:
                ups.add(target)
        upstream[name] = ups
    for name, ups in upstream.items():
        missing = sorted(u for u in ups if u not in names)
        if missing:
            raise CheckError(
                f"operation {name!r} refers to {', '.join(map(repr, missing))}, which is not an operation of this DAG",
                (*where, "operations", names[name]),
            )
    cycle = find_cycle(upstream)
    if cycle:
        raise CheckError(f"the DAG has a cycle: {' -> '.join(cycle)}", (*where, "operations", names[cycle[0]]))
    context = _dag_context(effective_ops, dag_inputs)
    for name, op in effective_ops.items():
        try:
            check_params(op, label=f"op {name}", context=context)
        except CheckError as e:
            raise CheckError(str(e), (*where, "operations", names[name], *e.where), e.stage) from None
        if op.dag is not None:
            check_dag(op.dag, (*where, "operations", names[name], "run"), op.inputs or [])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in `node -> upstream` edges, as a path that starts and ends at the same node."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _dag_written_at(spec: Polyaxonfile) -> tuple[Any, ...] | None:
    """Where the DAG is written in this file (`run`, `component.run`, ...), None if elsewhere."""
    where: tuple[Any, ...] = ()
    node: Polyaxonfile | None = spec
    while node is not None:
        if node.dag is not None:
            return (*where, "run")
        if node.reference is not None:
            return None  # the component was read from another file
        where, node = (*where, "component"), node.component
    return None


def check(parsed: Parsed) -> tuple[Checked | None, list[Located]]:
    """Compile and check a parsed, resolved file.

    A file the compiler fails on unexpectedly (a bug of ours, found by some input) is reported as
    invalid like any other, so the rest of the repository is still reconciled and the file's last
    good state kept; the traceback goes to the log."""
    try:
        return _check(parsed)
    except RecursionError:
        return None, [Located(parsed.path, None, None, "specification nested too deeply", "compile")]
    except Exception as e:
        log.exception("internal error compiling %s", parsed.path)
        message = f"internal error while compiling this file ({type(e).__name__}); please report it"
        return None, [Located(parsed.path, None, None, message, "compile")]


def _check(parsed: Parsed) -> tuple[Checked | None, list[Located]]:
    spec = parsed.spec
    assert spec is not None

    def at(where: tuple[Any, ...], message: str, stage: str) -> Located:
        mark = parsed.document.locate(where) if parsed.document else None
        return Located(parsed.path, mark.line if mark else None, mark.column if mark else None, message, stage)

    try:
        effective = compose(spec)
    except ComposeError as e:
        return None, [at(e.where, str(e), "compile")]
    if effective.get("run") is None:
        provided = spec.component is not None or spec.reference is not None
        if provided and spec.run is None and "run" in spec.model_fields_set:
            strategy = spec.patch_strategy or "post_merge"
            message = f"nothing to run: `run: null` replaces the component's run (patchStrategy {strategy})"
            return None, [at(("run",), message, "compile")]
        return None, [
            at(
                ("kind",) if spec.kind else (),
                "nothing to run: no run section, and no component or reference that provides one",
                "compile",
            )
        ]
    effective = substitute_params(effective)
    try:
        compiled = _validated(effective)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"] if not (isinstance(p, str) and "[" in p))
        return None, [at(("run",), f"the composed operation is invalid at {loc}: {first['msg']}", "compile")]
    dag_where = _dag_written_at(spec)
    try:
        check_params(compiled)
        if compiled.dag is not None:
            check_dag(compiled.dag, dag_where or ("run",), compiled.inputs or [])
    except CheckError as e:
        # A DAG that comes from another file is reported at the top of this one.
        where = () if dag_where is None and e.where[:1] == ("run",) else e.where
        return None, [at(where, str(e), e.stage)]
    return Checked(effective, compiled), []


__all__ = ["CheckError", "Checked", "check", "check_params", "located_from_validation"]
