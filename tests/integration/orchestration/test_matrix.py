"""Matrix runs over the tracking DB: a grid with concurrency 2 runs every point once, never more
than two at a time, and the parent succeeds; early stopping stops the active trials."""

from __future__ import annotations

import datetime as dt
import itertools

from reconciler.model import RunRequest
from reconciler.plan import ActionKind
from reconciler.tracking import Store
from tests.integration.orchestration.conftest import T0
from tests.integration.orchestration.helpers import Daemon

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


def start(daemon: Daemon, files: dict[str, str]) -> RunRequest:
    [create] = [a for a in daemon.apply_git(files, "c1", T0) if a.action == ActionKind.CREATE]
    assert create.run is not None and daemon.orch.is_container(create.run)
    daemon.create(create.run, T0)
    return create.run


def test_a_grid_with_concurrency_two_runs_to_completion(daemon: Daemon, store: Store) -> None:
    matrix = start(daemon, sweep())
    assert daemon.status(matrix.name) == "running"
    finished: set[str] = set()
    most_active = 0
    for step in itertools.count(1):
        active = [n for n in daemon.submitted if n.request.name not in finished]
        most_active = max(most_active, len(active))
        if not active:
            break
        oldest = active[0]
        finished.add(oldest.request.name)
        loss = oldest.request.params["lr"] * oldest.request.params["batch_size"]
        daemon.finish(oldest.request.name, "succeeded", T0 + step * M, outputs={"loss": loss})
        assert step < 20
    assert most_active == 2
    points = [(n.request.params["lr"], n.request.params["batch_size"]) for n in daemon.submitted]
    assert points == list(itertools.product([0.01, 0.05, 0.1], [16, 64]))
    assert {n.parent for n in daemon.submitted} == {matrix.name}
    assert [n.request.cause_id for n in daemon.submitted] == [f"matrix:{matrix.name}:{i}" for i in range(6)]
    assert all("matrix" not in n.request.effective for n in daemon.submitted)
    assert daemon.submitted[0].request.effective["params"] == {"lr": {"value": 0.01}, "batch_size": {"value": 16}}
    assert daemon.status(matrix.name) == "succeeded"
    assert store.history(matrix.name)[-1].message == "6 of 6 trials succeeded"


def test_metric_early_stopping_stops_the_active_trials(daemon: Daemon) -> None:
    early = "earlyStopping: [{kind: metric_early_stopping, metric: loss, value: 0.5, optimization: minimize}]"
    matrix = start(daemon, sweep(early))
    first, second = daemon.submitted
    daemon.record(second.request.name, "running", T0 + M)
    daemon.finish(first.request.name, "succeeded", T0 + 2 * M, outputs={"loss": 0.16})
    assert daemon.stopped == [second.request.name] and len(daemon.submitted) == 2
    daemon.record(second.request.name, "stopped", T0 + 3 * M)
    assert daemon.status(matrix.name) == "succeeded"
    assert len(daemon.submitted) == 2
