"""Hooks of a run that reached a final status become runs of their own, once each.

A hook names a hub component (`hubRef`). The orchestrator has no files, so it asks the daemon's
`resolve_hub(op, hub_ref, params)` for the hook's compiled operation; without that callback, or
when the reference does not resolve, the hook does not run and a `Notice` says so (a finished run's status
cannot carry a warning: done statuses never change). Each hook run's cause id is
`hook:<run>:<index>:<status>`, so handling the same transition twice creates one hook run.
"""

from __future__ import annotations

import datetime as dt

from pydantic import ValidationError

from reconciler.model import Cause, OpKey
from reconciler.orchestration import tree
from reconciler.orchestration.specs import child_key, request_for, with_params
from reconciler.orchestration.tree import Context
from reconciler.orchestration.work import Notice, Work
from reconciler.scheduling.hooks import hooks_to_fire
from reconciler.spec.sections import Hook
from reconciler.statuses import Status, is_done

HOOK = "hook"


def fire_hooks(ctx: Context, run_name: str, status: str, now: dt.datetime) -> Work:
    if not is_done(status):
        return Work()
    run = ctx.store.run(run_name)
    if run is None or run.id is None or not (run.spec or {}).get("hooks"):
        return Work()
    row = ctx.store.run_detail(run.id)
    key = OpKey.parse(ctx.store.op_key_by_id(run.operation_id))
    raw = (run.spec or {})["hooks"]
    commit = run.commit_sha or ""
    inputs = dict(row.params) if row is not None else {}
    namespace = row.namespace if row is not None else ctx.options_for(key).namespace
    try:
        hooks = [Hook.model_validate(h) for h in raw] if isinstance(raw, list) else []
    except ValidationError as e:
        return Work(notices=(Notice(run_name, "InvalidHooks", str(e)),))
    outputs = ctx.outputs(run_name) if status == Status.SUCCEEDED else {}
    fired, problems = hooks_to_fire(hooks, run=run_name, status=status, outputs=outputs, inputs=inputs)
    parts = [Work(notices=tuple(Notice(run_name, "HookNotRun", p.message) for p in problems))]
    for hook in fired:
        component = ctx.resolve_hub(key, hook.hub_ref, hook.params) if ctx.resolve_hub is not None else None
        if component is None:
            message = f"hook {hook.index} ({hook.hub_ref}) did not run: its hubRef cannot be resolved here"
            parts.append(Work(notices=(Notice(run_name, "HookNotRun", message),)))
            continue
        request = request_for(
            child_key(key, f"hook{hook.index}"),
            with_params(component, hook.params),
            cause=Cause.HOOK,
            cause_id=hook.cause_id,
            commit=commit,
            namespace=namespace,
            params=hook.params,
        )
        with ctx.store.unit_of_work() as s:
            _, launched = tree.launch(ctx, s, request, now=now, parent=run_name, child_mode=HOOK)
        parts.append(launched)
    return Work.merge(parts)


__all__ = ["fire_hooks"]
