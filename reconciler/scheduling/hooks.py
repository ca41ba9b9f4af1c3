"""Which hooks fire when a run reaches a final status.

A hook names a component (`hubRef`) to run when its trigger status is reached: `done` (or no
trigger) means any final status. Its `conditions` are evaluated like a DAG op's, over the run's
outputs, inputs and status; a condition that cannot be evaluated is reported, not swallowed.
Each fired hook gets a cause id made of the run, the hook's position and the status, so
recording it twice creates one hook run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.scheduling.conditions import ConditionError, evaluate
from reconciler.scheduling.refs import RefError, resolve_params, run_context
from reconciler.statuses import Status, is_done


@dataclass(frozen=True)
class HookRun:
    index: int
    hub_ref: str
    cause_id: str
    params: dict[str, Any]
    connection: str | None = None


@dataclass(frozen=True)
class HookProblem:
    index: int
    message: str


def hooks_to_fire(
    hooks: Sequence[Any] | None,
    *,
    run: str,
    status: str,
    outputs: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> tuple[list[HookRun], list[HookProblem]]:
    """The hooks (spec `Hook` models) that fire for `run` reaching `status`."""
    if not is_done(status) or not hooks:
        return [], []
    me = run_context(uuid=run, status=status, outputs=outputs or {}, inputs=inputs or {})
    context = {"run": me, "outputs": me["outputs"], "inputs": me["inputs"], "status": status}
    fired: list[HookRun] = []
    problems: list[HookProblem] = []
    for index, hook in enumerate(hooks):
        trigger = getattr(hook.trigger, "value", hook.trigger) or Status.DONE
        if trigger != Status.DONE and trigger != status:
            continue
        if hook.conditions:
            try:
                if not evaluate(hook.conditions, context):
                    continue
            except ConditionError as e:
                problems.append(HookProblem(index, f"hook {hook.hub_ref}: conditions {hook.conditions!r}: {e}"))
                continue
        try:
            params = resolve_params(hook.params or {}, {"run": me}, roots=("run",))
        except RefError as e:
            problems.append(HookProblem(index, f"hook {hook.hub_ref}: {e}"))
            continue
        fired.append(HookRun(index, hook.hub_ref, f"hook:{run}:{index}:{status}", params, hook.connection))
    return fired, problems


__all__ = ["HookProblem", "HookRun", "hooks_to_fire"]
