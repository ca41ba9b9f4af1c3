"""Test drivers: compile polyaxonfiles, plan, and apply `Work` as the daemon does.

`Daemon` is the daemon's side of the contract, nothing more: it records the statuses the
orchestrator asks for (then hands each transition back to `on_transition`), remembers what it
was asked to submit and stop, and plays the backend by recording the statuses a test chooses.
Backend outputs come from a dict the test fills (a stand-in for the backend's outputs, named so).
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Mapping
from typing import Any

from reconciler.compile.options import CompileOptions
from reconciler.compile.repo import compile_repo
from reconciler.model import DesiredState, RunRequest, StatusTransition
from reconciler.orchestration import NewRun, Orchestrator, ScheduleOptions, Work
from reconciler.orchestration.specs import CAUSE_KIND
from reconciler.plan import Action, TrackedState, plan
from reconciler.statuses import Status
from reconciler.tracking import Store


def compile_files(files: Mapping[str, str], commit: str) -> DesiredState:
    data = {path: textwrap.dedent(text).encode() for path, text in files.items()}
    result = compile_repo(data, CompileOptions(repo="r"), commit)
    assert not result.desired.invalid, result.desired.invalid
    return result.desired


class Daemon:
    def __init__(self, store: Store, options: ScheduleOptions | None = None) -> None:
        self.store = store
        self.outputs: dict[str, dict[str, Any]] = {}  # stand-in for the backend's outputs
        self.options = options or ScheduleOptions()
        self.orch = self.orchestrator()
        self.submitted: list[NewRun] = []
        self.stopped: list[str] = []
        self.notices: list[str] = []

    def orchestrator(self, **kw: Any) -> Orchestrator:
        return Orchestrator(
            self.store,
            backend_name="local",
            options_for=lambda _op: self.options,
            outputs_of=lambda run: self.outputs.get(run, {}),
            **kw,
        )

    # -- Git -> plan -> apply ----------------------------------------------------------------

    def apply_git(self, files: Mapping[str, str], commit: str, now: dt.datetime) -> list[Action]:
        desired = compile_files(files, commit)
        schedules, subscriptions = self.orch.tracked("r")
        actions = plan(desired, None, TrackedState(schedules=schedules, subscriptions=subscriptions), now)
        for op in desired.ops.values():
            self.store.upsert_operation(str(op.key), "r", op.mode.value, now, spec_hash=op.spec_hash, commit_sha=commit)
        self.apply(self.orch.sync(actions, desired, now), now)
        self.last_actions = actions
        return actions

    def create(self, request: RunRequest, now: dt.datetime) -> None:
        """A CREATE action's run: recorded, then started if it is a DAG or matrix, else submitted."""
        self.store.create_run(
            op_key=str(request.op),
            cause=CAUSE_KIND[request.cause],
            cause_id=request.cause_id,
            name=request.name,
            spec_hash=request.spec_hash,
            backend="local",
            now=now,
            commit_sha=request.commit,
            kind=request.kind,
            spec=request.effective,
        )
        if Orchestrator.is_container(request):
            self.apply(self.orch.start(request, now), now)
        else:
            self.submitted.append(NewRun(request))

    # -- applying work -------------------------------------------------------------------------

    def apply(self, work: Work, now: dt.datetime) -> Work:
        self.submitted.extend(work.new_runs)
        self.stopped.extend(work.stops)
        self.notices.extend(f"{n.subject}: {n.reason}: {n.message}" for n in work.notices)
        for update in work.updates:
            self.record(update.run, update.status, now, update.reason, update.message)
        return work

    def record(self, run: str, status: str, at: dt.datetime, reason: str = "", message: str = "") -> None:
        """A status observed (or derived): recorded, then handed to `on_transition`."""
        change = self.store.transition(run, Status(status), at=at, reason=reason or None, message=message or None)
        if change is not None:
            self.apply(self.orch.on_transition(StatusTransition(run, status, at, reason, message), at), at)

    def finish(self, run: str, status: str, at: dt.datetime, outputs: dict[str, Any] | None = None) -> None:
        self.outputs[run] = outputs or {}
        self.record(run, "running", at)
        self.record(run, status, at)

    # -- reading back ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        return [n.request.name for n in self.submitted]

    def by_op(self, name: str) -> list[NewRun]:
        return [n for n in self.submitted if n.request.op.name == name]

    def status(self, run: str) -> str:
        found = self.store.run(run)
        assert found is not None
        return str(found.status)
