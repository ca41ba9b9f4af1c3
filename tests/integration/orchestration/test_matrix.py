"""Matrix runs on the production daemon: a grid with concurrency 2 runs every point once, never more
than two at a time, and the parent succeeds; early stopping stops the active trials."""

from __future__ import annotations

import datetime as dt
import itertools

from reconciler.model import RunRequest
from reconciler.orchestration import Orchestrator
from reconciler.plan import ActionKind
from tests.infra.daemon import DaemonHarness
from tests.integration.orchestration.conftest import T0

M = dt.timedelta(minutes=1)


def sweep(extra: str = "") -> dict[str, str]:
    return {
        "ops/sweep.yaml": f"""
            version: 1.1
            kind: operation
            name: sweep
            matrix:
              kind: grid
              concurrency: 2
              params:
                lr: {{kind: choice, value: [0.01, 0.05, 0.1]}}
                batch_size: {{kind: choice, value: [16, 64]}}
              {extra}
            component:
              inputs: [{{name: lr, type: float}}, {{name: batch_size, type: int}}]
              outputs: [{{name: loss, type: float, isOptional: true}}]
              run:
                kind: job
                container: {{image: busybox, command: [echo, "{{{{ lr }}}} {{{{ batch_size }}}}"]}}
            """
    }


def start(h: DaemonHarness, files: dict[str, str]) -> RunRequest:
    [create] = [a for a in h.apply_git(files, T0).plan if a.action == ActionKind.CREATE]
    assert create.run is not None and Orchestrator.is_container(create.run)
    return create.run


def test_a_grid_with_concurrency_two_runs_to_completion(h: DaemonHarness) -> None:
    matrix = start(h, sweep())
    assert h.status(matrix.name) == "running"
    finished: set[str] = set()
    most_active = 0
    for step in itertools.count(1):
        active = [r for r in h.submitted if r.name not in finished]
        most_active = max(most_active, len(active))
        if not active:
            break
        oldest = active[0]
        finished.add(oldest.name)
        loss = oldest.params["lr"] * oldest.params["batch_size"]
        h.finish(oldest.name, "succeeded", T0 + step * M, outputs={"loss": loss})
        assert step < 20
    assert most_active == 2
    points = [(r.params["lr"], r.params["batch_size"]) for r in h.submitted]
    assert points == list(itertools.product([0.01, 0.05, 0.1], [16, 64]))
    assert {h.parent(r.name) for r in h.submitted} == {matrix.name}
    assert [r.cause_id for r in h.submitted] == [f"matrix:{matrix.name}:{i}" for i in range(6)]
    assert all("matrix" not in r.effective for r in h.submitted)
    assert h.submitted[0].effective["params"] == {"lr": {"value": 0.01}, "batch_size": {"value": 16}}
    assert h.status(matrix.name) == "succeeded"
    assert h.store.history(matrix.name)[-1].message == "6 of 6 trials succeeded"


def test_metric_early_stopping_stops_the_active_trials(h: DaemonHarness) -> None:
    early = "earlyStopping: [{kind: metric_early_stopping, metric: loss, value: 0.5, optimization: minimize}]"
    matrix = start(h, sweep(early))
    first, second = h.submitted
    h.record(second.name, "running", T0 + M)
    h.finish(first.name, "succeeded", T0 + 2 * M, outputs={"loss": 0.16})
    assert h.stopped == [second.name] and len(h.submitted) == 2
    h.record(second.name, "stopped", T0 + 3 * M)
    assert h.status(matrix.name) == "succeeded"
    assert len(h.submitted) == 2
