"""The daemon's memory and reconcile time as history grows: 10,000 operations, 1 to 30 days of runs.

A git repo of 10,000 one-shot operations is applied once; then each simulated day adds one finished
run per operation to the tracking database (bulk inserted, as 30 days of a daily sweep would leave
them), and at days 1, 10 and 30 a fresh daemon process (the production `Daemon` from
`wiring.build_daemon`, SQLite, a backend that runs nothing) starts, reconciles the unchanged repo twice and
reports its resident memory and the second reconcile's time. Flat is the goal: a reconcile reads
each operation's newest run and the active ones, never the history (`Store.planner_runs`).

    make bench-daemon          # or: python -m bench.daemon_bench [--ops N] [--days D]

The last line is JSON: {"ops", "days": {"1": {"rss_mb", "reconcile_s", "runs"}, ...}}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent

OP = """version: 1.1
kind: operation
name: op-{i:05d}
params: {{lr: {{value: 0.{i:05d}}}}}
component:
  inputs: [{{name: lr, type: float}}]
  run: {{kind: job, container: {{image: busybox, command: [echo, "{{{{ lr }}}}"]}}}}
"""

CHILD = r"""
import json, sys, time
from pathlib import Path
from reconciler.config import Settings
from reconciler.tracking import Store
from reconciler.wiring import build_daemon

tmp, url = Path(sys.argv[1]), sys.argv[2]
store = Store.open(f"sqlite:///{tmp / 'db.sqlite'}")
settings = Settings(repos=[{"name": "big", "url": url, "interval": 3600}], data_dir=tmp / "data", database="x")


class NullBackend:
    # Runs nothing: the bench measures the daemon and its database, not 10,000 processes.
    name = "local"
    def submit(self, run): return run.name
    def apply(self, run): return run.name
    def stop(self, name): pass
    def delete(self, name): pass
    def observe(self, timeout=None): return iter(())
    def list_owned(self): return []
    def logs(self, name, tail=None): return ""
    def ready(self): return None
    def close(self): pass


daemon = build_daemon(settings, store, NullBackend(), timer=False)
daemon.reconcile_repo("big")
start = time.perf_counter()
result = daemon.reconcile_repo("big")
took = time.perf_counter() - start
rss = int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
print(json.dumps({"rss_mb": round(rss, 1), "reconcile_s": round(took, 3), "changes": sum(
    v for k, v in result.actions.items() if k != "noop")}))
"""


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x", "GIT_CONFIG_GLOBAL": os.devnull}  # fmt: skip
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def make_repo(where: Path, ops: int) -> str:
    where.mkdir(parents=True)
    git(where, "init", "-q", "-b", "main")
    for i in range(ops):
        folder = where / "ops" / f"g{i // 500:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"op-{i:05d}.yaml").write_text(OP.format(i=i))
    git(where, "add", "-A")
    git(where, "commit", "-q", "-m", "ops")
    return where.as_uri()


def child(tmp: Path, url: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp), url], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def add_day(engine: sa.Engine, day: int, base: dt.datetime) -> int:
    """One finished run per operation for `day`, with its two history rows (bulk, in SQL)."""
    when = (base + dt.timedelta(days=day)).isoformat(sep=" ")
    with engine.begin() as conn:
        # The runs the first apply made finished too (the null backend never reports them).
        conn.execute(
            sa.text("UPDATE run SET status = 'succeeded', finished_at = created_at WHERE status != 'succeeded'")
        )
        ops = conn.execute(sa.text("SELECT id, last_good_spec_hash FROM operation")).all()
        rows = [
            {"name": f"bench-{op_id}-d{day}", "uuid": f"{op_id:08d}-0000-4000-8000-{day:012d}", "op": op_id,
             "cid": f"day-{day}", "hash": spec_hash or "h", "at": when}
            for op_id, spec_hash in ops
        ]  # fmt: skip
        conn.execute(
            sa.text(
                "INSERT INTO run (name, uuid, operation_id, cause, cause_id, commit_sha, spec_hash, backend, status,"
                " created_at, started_at, finished_at, updated_at, kind) VALUES (:name, :uuid, :op, 'schedule',"
                " :cid, NULL, :hash, 'local', 'succeeded', :at, :at, :at, :at, 'job')"
            ),
            rows,
        )
        conn.execute(
            sa.text(
                "INSERT INTO status_change (run_id, seq, status, previous, reason, message, at) SELECT id, 0,"
                " 'created', NULL, NULL, NULL, created_at FROM run WHERE cause_id = :cid"
            ),
            {"cid": f"day-{day}"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO status_change (run_id, seq, status, previous, reason, message, at) SELECT id, 1,"
                " 'succeeded', 'created', NULL, NULL, finished_at FROM run WHERE cause_id = :cid"
            ),
            {"cid": f"day-{day}"},
        )
        return int(conn.execute(sa.text("SELECT count(*) FROM run")).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    args, _ = parser.parse_known_args()
    checkpoints = sorted({1, min(10, args.days), args.days})
    from reconciler.tracking import upgrade

    figures: dict[str, Any] = {"ops": args.ops, "days": {}}
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as name:
        tmp = Path(name)
        url = make_repo(tmp / "repo", args.ops)
        db = f"sqlite:///{tmp / 'db.sqlite'}"
        upgrade(db)
        first = child(tmp, url)  # the first daemon creates a run per operation
        print(f"first apply: {first}")
        engine = sa.create_engine(db)
        base = dt.datetime(2025, 1, 1)
        for day in range(1, args.days + 1):
            runs = add_day(engine, day, base)
            if day in checkpoints:
                measured = child(tmp, url)
                measured["runs"] = runs
                figures["days"][str(day)] = measured
                print(f"day {day:>3}: {runs:>8} runs  rss {measured['rss_mb']:>6.1f} MB  "
                      f"reconcile {measured['reconcile_s']:.3f} s  changes {measured['changes']}")  # fmt: skip
        engine.dispose()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
