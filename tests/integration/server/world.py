"""A small world for the API and the dashboard: one repo with a job, a DAG, a matrix, a schedule,
an event subscriber and a broken file, reconciled by the production daemon (`DaemonHarness`)
over the scripted backend, with runs finished, metrics reported and a tick missed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reconciler.tracking import Point
from tests.infra.daemon import DaemonHarness

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)

COMPONENT = """
    inputs: [{name: lr, type: float, value: 0.1, isOptional: true}]
    outputs: [{name: loss, type: float, isOptional: true}]
    run:
      kind: job
      container: {image: busybox, command: [echo, "{{ lr }}"]}
"""


def _indented(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line.strip() else line for line in text.strip("\n").splitlines())


FILES = {
    "ops/train.yaml": f"""
        version: 1.1
        kind: operation
        name: train
        component:
{_indented(COMPONENT, 10)}
        """,
    "ops/sweep.yaml": f"""
        version: 1.1
        kind: operation
        name: sweep
        matrix:
          kind: grid
          concurrency: 3
          params:
            lr: {{kind: choice, value: [0.01, 0.05, 0.1]}}
          earlyStopping:
            - kind: metric_early_stopping
              metric: loss
              value: 0.0001
              optimization: minimize
              policy: {{kind: median, evaluationInterval: 1}}
        component:
{_indented(COMPONENT, 10)}
        """,
    "pipelines/flow.yaml": """
        version: 1.1
        kind: operation
        name: flow
        component:
          run:
            kind: dag
            operations:
              - name: prepare
                component: {run: {kind: job, container: {image: busybox, command: [echo, prepare]}}}
              - name: fit
                dependencies: [prepare]
                component: {run: {kind: job, container: {image: busybox, command: [echo, fit]}}}
        """,
    "ops/nightly.yaml": f"""
        version: 1.1
        kind: operation
        name: nightly
        schedule: {{kind: cron, cron: "0 2 * * *"}}
        component:
{_indented(COMPONENT, 10)}
        """,
    "ops/report.yaml": """
        version: 1.1
        kind: operation
        name: report
        events: [{kinds: [run_status_succeeded], ref: ops.train}]
        component: {run: {kind: job, container: {image: busybox, command: [echo, report]}}}
        """,
}

BROKEN = {
    "ops/broken.yaml": "version: 1.1\nkind: operation\nname: broken\ncomponent: {run: {kind: job, container: 7}}\n"
}


@dataclass
class World:
    h: DaemonHarness
    good: str  # the sha of the commit that applied everything
    bad: str  # a later commit with a broken file
    train: str
    sweep: str
    trials: list[str]
    flow: str
    steps: list[str]


def build(h: DaemonHarness) -> World:
    result = h.apply_git(FILES, T0)
    good = result.commit
    assert good is not None
    train = next(r.name for r in h.by_op("train"))
    sweep = h.store.list_runs(op_key="r:ops/sweep.yaml#sweep")[0][0].name
    flow = h.store.list_runs(op_key="r:pipelines/flow.yaml#flow")[0][0].name
    trials = [r.name for r in h.submitted if h.parent(r.name) == sweep]
    assert len(trials) == 3
    # The trials report losses as they train: the worst is stopped by the median policy once
    # another trial succeeded with better values.
    for step in range(3):
        for i, trial in enumerate(trials):
            if step == 0:
                h.record(trial, "running", T0 + M)
            loss = (1.0 - 0.2 * step) * (1 + i)
            if h.status(trial) == "running":
                h.daemon.applier.report(trial, [Point("loss", step, loss)], {"loss": loss}, T0 + (2 + step) * M)
        if step == 1:
            h.finish(trials[0], "succeeded", T0 + 4 * M, outputs={"loss": 0.8, "model": "s3://trial-0"})
    for trial in trials[1:]:
        if h.status(trial) == "stopping":
            h.record(trial, "stopped", T0 + 6 * M)
        elif h.status(trial) == "running":
            h.record(trial, "succeeded", T0 + 6 * M)
    h.finish(train, "succeeded", T0 + 5 * M, outputs={"loss": 0.25, "model": "s3://models/train"})
    [prepare] = [r.name for r in h.by_op("flow.prepare")]
    h.finish(prepare, "succeeded", T0 + 6 * M)
    [fit] = [r.name for r in h.by_op("flow.fit")]
    h.record(fit, "running", T0 + 7 * M)
    # A schedule tick missed while the daemon was down a day past the starting deadline.
    h.fire_ticks(T0 + dt.timedelta(days=2))
    bad = h.commit(BROKEN, message="a broken file")
    h.reconcile("r", T0 + dt.timedelta(days=2, minutes=5))
    return World(h, good, bad, train, sweep, trials, flow, [prepare, fit])
