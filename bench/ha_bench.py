"""High availability: 300 repos over 3 replicas, their balance, and how fast they fail over.

Three `reconciler run` processes (Kubernetes backend on the test control plane, one PostgreSQL)
share 300 repos of one job each, with `sharding.mode` kubernetes and then database, at the
default `lease_seconds` (15). For each mode it measures:

- balance: repos owned per replica once settled (max/min);
- kill -9 of one replica: for each of its repos, the time until a survivor holds the lease
  (`own`) and until that survivor has reconciled it (`reconciled`), p50/p99; the target is under
  lease_seconds + one renewal (a third of it);
- a rolling restart of all three (SIGTERM, start again, wait until the shares settle, next), as
  a Deployment with maxUnavailable 1 does it: the same two times for every repo that moved;
- a push webhook sent to a replica that does not own the repo: the time until the owner has
  reconciled it (the hand-off), p50/p99 of 20.

    make bench-ha            # or: python -m bench.ha_bench [--repos 300] [--lease 15] [--modes kubernetes,database]

The last line is JSON: {"repos", "lease_seconds", "modes": {mode: {"balance": {...}, "kill9": {...},
"rolling": {...}, "handoff": {...}}}}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.sharding import assign
from reconciler.sharding.kubernetes import ANNOTATION_REPO, LABEL_LEASE
from tests.cluster import binaries
from tests.cluster.controlplane import ControlPlane, wait_service_account
from tests.e2e.harness import DaemonProcess, http, job, reconciler_argv
from tests.infra.git_server import GitRepoFactory
from tests.infra.postgres import start_postgres, stop_postgres
from tests.infra.webhooks import WebhookSender

SECRET = "bench-webhook-secret"
_RECONCILED = re.compile(r'^reconciler_reconcile_total\{repo="([^"]+)",result="[a-z]+"\} ([0-9.e+]+)$', re.M)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_s": round(percentile(values, 50), 2),
        "p99_s": round(percentile(values, 99), 2),
        "max_s": round(max(values), 2) if values else float("nan"),
    }


class Fleet:
    def __init__(self, replicas: list[DaemonProcess], holders: Callable[[], dict[str, str]], repos: list[str]) -> None:
        self.replicas = replicas
        self.holders = holders  # repo -> identity holding its lease now
        self.repos = repos

    def up(self) -> list[DaemonProcess]:
        return [r for r in self.replicas if r.running]

    @staticmethod
    def reconciles(replica: DaemonProcess) -> Counter[str]:
        answer = http(replica.url + "/metrics", timeout=10)
        counts: Counter[str] = Counter()
        if answer is None or answer[0] != 200:
            return counts
        for repo, value in _RECONCILED.findall(answer[1]):
            counts[repo] += int(float(value))
        return counts

    def idle(self) -> bool:
        """No reconcile waiting for a worker on any replica."""
        for replica in self.up():
            answer = http(replica.url + "/metrics", timeout=10)
            if answer is None or 'reconciler_workqueue_depth{kind="reconcile"} 0.0' not in answer[1]:
                return False
        return True

    def settled(self) -> bool:
        live = [r.base.name for r in self.up()]
        want = assign(self.repos, live)
        return self.holders() == want

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 300) -> float:
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{what} not within {timeout}s")
            time.sleep(0.2)
        return time.monotonic() - started

    def baseline(self, gone: str) -> dict[str, Counter[str]]:
        """Reconciles so far per repo on every replica but `gone` (taken before it goes)."""
        return {r.base.name: self.reconciles(r) for r in self.up() if r.base.name != gone}

    def follow(
        self, moved: list[str], gone: str, started: float, baseline: dict[str, Counter[str]], timeout: float = 300
    ) -> tuple[list[float], list[float]]:
        """Per repo of `moved`: seconds from `started` until another replica holds it, and until
        that replica reconciled it (more reconciles than in `baseline`)."""
        owned_at: dict[str, float] = {}
        reconciled_at: dict[str, float] = {}
        last_metrics = 0.0
        while len(reconciled_at) < len(moved):
            now = time.monotonic()
            if now - started > timeout:
                raise TimeoutError(f"{len(moved) - len(reconciled_at)} repos not taken over within {timeout}s")
            holders = self.holders()
            for repo in moved:
                holder = holders.get(repo)
                if repo not in owned_at and holder not in (None, gone):
                    owned_at[repo] = now - started
            if now - last_metrics >= 0.5:
                last_metrics = now
                counts = {r.base.name: self.reconciles(r) for r in self.up() if r.base.name in baseline}
                for repo in moved:
                    holder = holders.get(repo)
                    if repo in reconciled_at or holder not in counts:
                        continue
                    if counts[holder][repo] > baseline[holder][repo]:
                        reconciled_at[repo] = now - started
            time.sleep(0.1)
        return list(owned_at.values()), list(reconciled_at.values())


def run_mode(mode: str, args: argparse.Namespace, plane: ControlPlane, tmp: Path) -> dict[str, Any]:
    namespace = f"bench-ha-{mode}"
    plane.kubectl("create", "namespace", namespace)
    with contextlib.closing(plane.api_client()) as api:
        wait_service_account(api, namespace)
    server = start_postgres()
    replicas: list[DaemonProcess] = []
    try:
        url = server.url(server.create_database())
        done = subprocess.run([*reconciler_argv(), "db", "upgrade", "--db", url], capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        factory = GitRepoFactory(tmp / f"git-{mode}")
        repos = [f"repo-{i:03d}" for i in range(args.repos)]
        secret = tmp / "webhook-secret"
        secret.write_text(SECRET)
        secret.chmod(0o600)
        entries = []
        git = {}
        for repo in repos:
            git[repo] = factory.create(
                repo,
                {".polyaxon-reconciler.yaml": f"namespace: {namespace}\n", "ops/train.yaml": job("train", "true")},
            )
            entries.append(
                {
                    "name": repo,
                    "url": git[repo].file_url,
                    "interval": 60,
                    "forge": {"provider": "github", "project": f"acme/{repo}", "webhook_secret_file": str(secret)},
                }
            )
        for i in range(3):
            replicas.append(
                DaemonProcess(
                    tmp / mode / f"replica-{i}",
                    entries,
                    url,
                    extra={
                        "backend": "kubernetes",
                        "kubernetes": {"kubeconfig": str(plane.kubeconfig), "namespace": namespace},
                        "sharding": {"mode": mode, "lease_seconds": args.lease, "identity": f"replica-{i}"},
                        "log_level": os.environ.get("BENCH_LOG_LEVEL", "warning"),
                    },
                )
            )

        if mode == "database":
            from reconciler.tracking import Store

            store = Store.open(url)

            def holders() -> dict[str, str]:
                return {r.repo: r.holder.split("#")[0] for r in store.repo_leases() if r.holder}
        else:

            def holders() -> dict[str, str]:
                out = plane.kubectl("get", "leases", "-n", namespace, "-l", f"{LABEL_LEASE}=repo", "-o", "json").stdout
                found = {}
                for item in json.loads(out)["items"]:
                    holder = (item.get("spec") or {}).get("holderIdentity") or ""
                    if holder:
                        found[item["metadata"]["annotations"][ANNOTATION_REPO]] = holder.split("#")[0]
                return found

        fleet = Fleet(replicas, holders, repos)
        started = time.monotonic()
        for replica in replicas:
            replica.spawn()
        settle = fleet.wait(fleet.settled, "the first shares to settle")
        counts = Counter(fleet.holders().values())
        balance = {
            "per_replica": dict(sorted(counts.items())),
            "max_over_min": round(max(counts.values()) / min(counts.values()), 3),
            "settled_after_start_s": round(time.monotonic() - started, 1),
        }
        print(f"[{mode}] settled in {settle:.1f}s: {balance}", flush=True)

        # -- kill -9 ----------------------------------------------------------------------------------
        victim = replicas[0]
        moved = [repo for repo, who in fleet.holders().items() if who == victim.base.name]
        before = fleet.baseline(victim.base.name)
        t0 = time.monotonic()
        victim.kill9()
        owned, reconciled = fleet.follow(moved, victim.base.name, t0, before)
        kill9 = {"repos": len(moved), "own": summary(owned), "reconciled": summary(reconciled)}
        print(f"[{mode}] kill -9: {kill9}", flush=True)
        victim.start(timeout=120)
        fleet.wait(fleet.settled, "the restarted replica's share to settle")

        # -- rolling restart ---------------------------------------------------------------------------
        roll_owned: list[float] = []
        roll_reconciled: list[float] = []
        rollout_started = time.monotonic()
        for replica in replicas:
            moved = [repo for repo, who in fleet.holders().items() if who == replica.base.name]
            before = fleet.baseline(replica.base.name)
            assert replica.proc is not None
            t0 = time.monotonic()
            replica.proc.send_signal(signal.SIGTERM)  # as the kubelet does; it gives its repos back
            owned, reconciled = fleet.follow(moved, replica.base.name, t0, before)
            replica.proc.wait(60)
            roll_owned += owned
            roll_reconciled += reconciled
            replica.start(timeout=120)
            fleet.wait(fleet.settled, "the shares to settle after a restart")
        rolling = {
            "repos_moved": len(roll_owned),
            "own": summary(roll_owned),
            "reconciled": summary(roll_reconciled),
            "rollout_s": round(time.monotonic() - rollout_started, 1),
        }
        print(f"[{mode}] rolling restart: {rolling}", flush=True)

        # -- webhook hand-off ----------------------------------------------------------------------------
        # Measured on an idle fleet: a webhook queued behind a hundred catch-up reconciles after the
        # rollout would measure the queue, not the hand-off.
        fleet.wait(fleet.idle, "the replicas to finish catching up")
        latencies = []
        sender = WebhookSender(SECRET)
        for repo in repos[: args.webhooks]:
            owner_name = fleet.holders()[repo]
            owner = next(r for r in replicas if r.base.name == owner_name)
            stranger = next(r for r in replicas if r.base.name != owner_name)
            before = fleet.reconciles(owner)[repo]
            t0 = time.monotonic()
            _, answer = sender.push(
                "github", f"{stranger.url}/webhooks/github", repo=f"acme/{repo}", ref="refs/heads/main",
                before="0" * 40, after=git[repo].head(),
            )  # fmt: skip
            assert answer.status == 200, answer
            while fleet.reconciles(owner)[repo] <= before:
                if time.monotonic() - t0 > 30:
                    raise TimeoutError(f"the owner of {repo} did not reconcile after a hand-off")
                time.sleep(0.02)
            latencies.append(time.monotonic() - t0)
        handoff = summary(latencies)
        print(f"[{mode}] webhook hand-off: {handoff}", flush=True)
        return {"balance": balance, "kill9": kill9, "rolling": rolling, "handoff": handoff}
    finally:
        for replica in replicas:
            replica.kill9()
        stop_postgres(server)
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=300)
    parser.add_argument("--lease", type=float, default=15.0)
    parser.add_argument("--webhooks", type=int, default=20)
    parser.add_argument("--modes", default="kubernetes,database")
    args, _ = parser.parse_known_args()
    located = binaries.locate()
    if located.bin_dir is None:
        print(f"control plane binaries unavailable: {located.reason} (run `make k8s-binaries`)", file=sys.stderr)
        return 2
    figures: dict[str, Any] = {"repos": args.repos, "lease_seconds": args.lease, "target_s": args.lease * 4 / 3}
    figures["modes"] = {}
    keep = os.environ.get("BENCH_KEEP")  # a directory to keep the replicas' logs in
    with tempfile.TemporaryDirectory(prefix="bench-ha-") as name, ControlPlane(located.bin_dir) as plane:
        tmp = Path(keep) if keep else Path(name)
        for mode in args.modes.split(","):
            figures["modes"][mode] = run_mode(mode, args, plane, tmp)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
