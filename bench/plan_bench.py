"""Compile + plan cost on a synthetic repo: cold, then after a one-file change.

The repo has 1,000 DAG files of 10 operations each (10,000 operations), a tenth of them on a cron
schedule and one in fifty subscribed to another's events, using 50 shared component files. Two shapes (`--shape`):
- `dag` (default): each DAG declares two components by pathRef to the shared files, and its
  operations use them by dagRef, the usual way to write a DAG;
- `refs`: every operation has its own pathRef, the worst case for resolution (10 per file).
Run: `python -m bench.plan_bench [--shape dag|refs|all]` (`make bench-plan`: both, one after the other).
Targets (issue): cold < 2 s; one changed file < 50 ms and < 5% of cold, i.e. the cost follows the
change, not the repo.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reconciler.compile import CompileOptions, CompileResult, compile_repo
from reconciler.plan import TrackedState, apply_effects, changes, plan

COMPONENT = """\
kind: component
name: step-{k}
inputs:
  - {{name: lr, type: float}}
  - {{name: epochs, type: int, isOptional: true, value: 3}}
run:
  kind: job
  container:
    image: python:3.11-slim
    command: [python, -m, train, "--lr={{{{ lr }}}}", "--epochs={{{{ epochs }}}}"]
    resources: {{requests: {{cpu: "500m", memory: 1Gi}}}}
"""


def dag_file(i: int, ops: int, components: int, variant: int = 0, shape: str = "dag") -> str:
    lines = [
        "version: 1.1",
        "kind: operation",
        f"name: pipeline-{i:04d}",
        f"description: synthetic pipeline {i} (variant {variant})",
        f"tags: [bench, group-{i % 7}]",
    ]
    if i % 10 == 0:
        lines += ["schedule:", "  kind: cron", f'  cron: "{i % 60} 2 * * *"']
    elif i % 50 == 1:
        lines += ["events:", f"  - {{kinds: [run_status_succeeded], ref: ops.pipeline-{i - 1:04d}}}"]
    lines += ["run:", "  kind: dag"]
    if shape == "dag":
        lines += ["  components:"]
        for c in (i % components, (i + 1) % components):
            lines += [f"    - name: step-{c}", f"      pathRef: ../../lib/step-{c}.yaml"]
    lines += ["  operations:"]
    for j in range(ops):
        lines.append(f"    - name: step-{j}")
        if shape == "dag":
            lines.append(f"      dagRef: step-{(i + j % 2) % components}")
        else:
            lines.append(f"      pathRef: ../../lib/step-{(i + j) % components}.yaml")
        lines.append(f"      params: {{lr: {{value: {0.001 * (j + 1) + variant:.4f}}}}}")
        if j:
            lines.append(f"      dependencies: [step-{j - 1}]")
    return "\n".join(lines) + "\n"


def generate(files: int = 1000, ops_per_file: int = 10, components: int = 50, shape: str = "dag") -> dict[str, bytes]:
    repo = {f"lib/step-{k}.yaml": COMPONENT.format(k=k).encode() for k in range(components)}
    for i in range(files):
        repo[f"pipelines/g{i // 100:02d}/pipeline-{i:04d}.yaml"] = dag_file(
            i, ops_per_file, components, shape=shape
        ).encode()
    return repo


def _timed(fn: Callable[[], object]) -> float:
    """CPU seconds of this process: on a shared machine wall time mostly measures the neighbours."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _wall.append(time.perf_counter() - wall)
    return time.process_time() - cpu


_wall: list[float] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--ops", type=int, default=10, help="operations per DAG file")
    parser.add_argument("--repeat", type=int, default=5, help="incremental samples (median reported)")
    parser.add_argument("--shape", choices=("dag", "refs", "all"), default="all")
    args = parser.parse_args()
    figures = {}
    for shape in ("dag", "refs") if args.shape == "all" else (args.shape,):
        figures[shape] = run_shape(args, shape)
        gc.collect()
    print(json.dumps(figures if args.shape == "all" else figures[args.shape]))


def run_shape(args: argparse.Namespace, shape: str) -> dict[str, Any]:
    _wall.clear()
    files = generate(args.files, args.ops, shape=shape)
    options = CompileOptions(repo="bench", hub_dir=None)
    now = datetime(2024, 6, 1, tzinfo=UTC)
    state: dict[str, Any] = {"tracked": TrackedState(), "observed": []}

    def step(commit: str, changed: set[str] | None) -> None:
        result = compile_repo(state["files"], options, commit, previous=state.get("result"), changed=changed)
        state["result"] = result
        state["plan"] = plan(result.desired, state["observed"], state["tracked"], now)

    state["files"] = files
    cold_s = _timed(lambda: step("c0", None))
    result: CompileResult = state["result"]
    inner = sum(len(op.effective["run"].get("operations", [])) for op in result.desired.ops.values())
    assert not result.desired.invalid, result.desired.invalid
    print(f"shape {shape}: {len(files)} files, {len(result.desired.ops)} DAG operations, {inner} operations inside")
    print(f"cold compile+plan: {cold_s * 1000:.0f} ms CPU, {_wall[-1] * 1000:.0f} ms wall (target < 2000 ms)")
    # Steady state: the cold plan applied, as the daemon would have done.
    state["observed"], state["tracked"] = apply_effects(state["plan"], [], state["tracked"], now)

    samples: list[float] = []
    for n in range(args.repeat):
        i = (n * 37) % args.files
        path = f"pipelines/g{i // 100:02d}/pipeline-{i:04d}.yaml"
        state["files"] = {**state["files"], path: dag_file(i, args.ops, 50, variant=n + 1, shape=shape).encode()}
        samples.append(_timed(lambda path=path, n=n: step(f"c{n + 1}", {path})))
        assert state["result"].recompiled == {path}, state["result"].recompiled
        assert len(changes(state["plan"])) == 1, changes(state["plan"])
        state["observed"], state["tracked"] = apply_effects(state["plan"], state["observed"], state["tracked"], now)
    one = statistics.median(samples)
    walls = _wall[-len(samples) :]
    print(
        f"one changed file: {one * 1000:.1f} ms CPU, {statistics.median(walls) * 1000:.1f} ms wall, "
        f"median of {len(samples)} (target < 50 ms)"
    )
    print(f"ratio: {one / cold_s * 100:.2f}% of cold (target < 5%)")

    lib = "lib/step-0.yaml"
    state["files"] = {**state["files"], lib: state["files"][lib].replace(b"python:3.11", b"python:3.12")}
    lib_s = _timed(lambda: step("lib", {lib}))
    users = len(state["result"].recompiled) - 1
    per_file = lib_s / max(users, 1) * 1000
    print(f"one changed component used by {users} files: {lib_s * 1000:.1f} ms ({per_file:.1f} ms per file)")
    return {
        "shape": shape,
        "operations": inner,
        "cold_cpu_ms": round(cold_s * 1000),
        "cold_wall_ms": round(_wall[0] * 1000),
        "one_change_cpu_ms": round(one * 1000, 1),
        "one_change_wall_ms": round(statistics.median(walls) * 1000, 1),
        "one_change_ratio": round(one / cold_s, 4),
        "component_change_ms": round(lib_s * 1000, 1),
        "component_users": users,
    }


if __name__ == "__main__":
    main()
