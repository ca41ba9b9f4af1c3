"""Tracking store throughput: status transitions in, "latest status per op" out, on both DBs.

    python -m bench.tracking_bench [--ops 10000] [--transitions 100000] [--only sqlite|postgres]

Everything goes through the real `Store` API (the ORM path the daemon uses), with status changes
batched into units of work of `--batch` transitions, plus a short run with one transaction per
transition to show the commit-latency-bound rate. SQLite is a WAL file in a temp dir; PostgreSQL
is a throw-away server started as the tests start it, with durable settings (fsync on).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.model import Cause
from reconciler.statuses import Status
from reconciler.tracking import Store, upgrade
from tests.infra.postgres import start_postgres, stop_postgres

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
MS = dt.timedelta(milliseconds=1)

# Ten legal changes per run; the last one varies so the final statuses differ.
PATH = [
    Status.COMPILED,
    Status.QUEUED,
    Status.SCHEDULED,
    Status.STARTING,
    Status.RUNNING,
    Status.UNKNOWN,
    Status.RUNNING,
    Status.PROCESSING,
    Status.RUNNING,
]
ENDS = [Status.SUCCEEDED, Status.FAILED, Status.STOPPED]


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'tracking.db'}"


@contextmanager
def postgres_url() -> Iterator[str]:
    server = start_postgres(durable=True)
    try:
        yield server.url(server.create_database("bench"))
    finally:
        stop_postgres(server)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(name: str, url: str, ops: int, transitions: int, batch: int) -> dict[str, float]:
    upgrade(url)
    store = Store.open(url)
    figures: dict[str, float] = {}
    try:
        store.ensure_repo("bench", "file:///bench.git", "main", T0)
        op_keys = [f"bench:ops/op{i:05d}.yaml#op{i:05d}" for i in range(ops)]
        runs_per_op = max(1, -(-transitions // (ops * (len(PATH) + 1))))
        run_names: list[str] = []

        def setup() -> None:
            for start in range(0, ops, batch):
                with store.unit_of_work() as tx:
                    for i, key in enumerate(op_keys[start : start + batch], start):
                        store.upsert_operation(key, "bench", "run", T0, spec_hash=f"h{i}", session=tx)
                        for k in range(runs_per_op):
                            name = f"op{i:05d}-h{i}-c{k}"
                            store.create_run(
                                op_key=key,
                                cause=Cause.COMMIT,
                                cause_id=f"c{k}",
                                name=name,
                                spec_hash=f"h{i}",
                                backend="local",
                                commit_sha=f"c{k}",
                                now=T0 + k * MS,
                                session=tx,
                            )
                            run_names.append(name)

        figures["setup_s"] = timed(setup)
        figures["runs"] = len(run_names)

        # Interleaved as in life: step n of every run, then step n+1.
        plan: list[tuple[str, Status, int]] = []
        for step in range(len(PATH) + 1):
            for r, name in enumerate(run_names):
                status = PATH[step] if step < len(PATH) else ENDS[r % len(ENDS)]
                plan.append((name, status, step))
        plan = plan[:transitions]

        def insert() -> None:
            for start in range(0, len(plan), batch):
                with store.unit_of_work() as tx:
                    for name, status, step in plan[start : start + batch]:
                        store.transition(name, status, at=T0 + (step + 1) * 1000 * MS, session=tx)

        insert_s = timed(insert)
        figures["transitions"] = len(plan)
        figures["insert_s"] = insert_s
        figures["insert_per_s"] = len(plan) / insert_s

        samples = []
        for _ in range(5):
            start = time.perf_counter()
            latest = store.latest_status_per_op()
            samples.append(time.perf_counter() - start)
            assert len(latest) == ops, (len(latest), ops)
        figures["latest_ms_median"] = statistics.median(samples) * 1000
        figures["latest_ms_min"] = min(samples) * 1000

        # One transaction per transition: what an unbatched watcher would see.
        single = 2000
        store.ensure_repo("bench", "file:///bench.git", "main", T0)
        store.upsert_operation("bench:single.yaml#single", "bench", "run", T0, spec_hash="s")
        names = []
        for k in range(single // 2):
            created = store.create_run(
                op_key="bench:single.yaml#single",
                cause=Cause.MANUAL,
                cause_id=f"m{k}",
                name=f"single-{k}",
                spec_hash="s",
                backend="local",
                now=T0,
            )
            names.append(created.run.name)

        def one_by_one() -> None:
            for n in names:
                store.transition(n, Status.RUNNING, at=T0 + MS)
                store.transition(n, Status.SUCCEEDED, at=T0 + 2 * MS)

        figures["single_per_s"] = single / timed(one_by_one)
    finally:
        store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--transitions", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="transitions per unit of work")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()

    backends = {"sqlite": sqlite_url, "postgres": postgres_url}
    results: dict[str, dict[str, float]] = {}
    for name, make_url in backends.items():
        if args.only and name != args.only:
            continue
        with make_url() as url:
            print(f"[{name}] running ...", flush=True)
            results[name] = bench(name, url, args.ops, args.transitions, args.batch)

    print()
    print(f"tracking store, {args.ops} ops, {args.transitions} transitions, {args.batch} per transaction")
    header = f"{'database':<10} {'runs':>7} {'setup s':>8} {'insert s':>9} {'trans/s':>8} "
    header += f"{'latest/op ms (median, min)':>27} {'1 tx each /s':>13}"
    print(header)
    for name, f in results.items():
        print(
            f"{name:<10} {f['runs']:>7.0f} {f['setup_s']:>8.1f} {f['insert_s']:>9.1f} "
            f"{f['insert_per_s']:>8.0f} "
            f"{f['latest_ms_median']:>18.1f}, {f['latest_ms_min']:>6.1f} {f['single_per_s']:>13.0f}"
        )
    print(json.dumps({"ops": args.ops, "transitions": args.transitions, "batch": args.batch, **results}))


if __name__ == "__main__":
    main()
