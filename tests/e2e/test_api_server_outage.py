"""The daemon as a process while its Kubernetes API server is unreachable for 60 seconds, with a
schedule due every few seconds and a commit landing during the outage.

The API server is the real test control plane's, reached through a TCP proxy the test closes
(connection refused, open connections reset: what a restarting API server looks like) and
reopens on the same port. Before the supervised loop, the `ticks` and `resume` workers died on the
first `TransientBackendError`, and nothing ran again until a restart while `/healthz` said ok;
`/readyz` read the informers' caches and stayed 200.

Now: `/healthz` stays 200 all along (every worker alive), `/readyz` names the backend (not git)
while the server is gone, and afterwards the commit is applied, every tick fired once (ticks that
came due during the outage are recorded then and started once the server is back), and both the
reconciles and the schedule go on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.fixtures import ProxiedApi
from tests.e2e.conftest import MakeDaemon
from tests.e2e.harness import DaemonProcess, job, metric
from tests.infra.git_server import GitRepoFactory

pytestmark = pytest.mark.k8s

OUTAGE = 60.0  # seconds the API server is unreachable: the scenario itself, not a synchronisation
REPO = "models"
TICK = f"{REPO}:ops/tick.yaml#tick"


def every(seconds: int) -> str:
    doc: dict[str, Any] = yaml.safe_load(job("tick", "true"))
    doc["schedule"] = {"kind": "interval", "frequency": seconds}
    return yaml.safe_dump(doc, sort_keys=False)


def readiness(daemon: DaemonProcess) -> tuple[int, dict[str, Any]] | None:
    import json

    answer = daemon.get("/readyz")
    return None if answer is None else (answer[0], json.loads(answer[1]))


def ticks(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [r for r in daemon.api_runs() if r["op"] == TICK]


def test_the_daemon_rides_out_an_api_server_outage_alone(
    daemons: MakeDaemon,
    git_repo_factory: GitRepoFactory,
    k8s_api_proxy: ProxiedApi,
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    proxy = k8s_api_proxy.proxy
    git = git_repo_factory.create(REPO, {"ops/tick.yaml": every(5), "ops/train.yaml": job("train", "true")})
    daemon = daemons(
        [{"name": REPO, "url": git.file_url, "interval": 1}],
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        extra={
            "backend": "kubernetes",
            "kubernetes": {"kubeconfig": str(k8s_api_proxy.kubeconfig), "namespace": k8s_namespace},
        },
    ).start(timeout=60)
    daemon.wait_run("#train", lambda r: r["status"] == "succeeded", "the first commit's run", 60)
    daemon.wait(lambda: sum(r["status"] == "succeeded" for r in ticks(daemon)) >= 2, "two ticks before", 60)

    proxy.close()
    down_at = time.monotonic()

    def backend_unready() -> bool:
        found = readiness(daemon)
        return found is not None and found[0] == 503 and "backend" in found[1]["failing"]

    daemon.wait(backend_unready, "/readyz to name the backend")
    git.commit("a new op during the outage", {"ops/late.yaml": job("late", "true")})
    git.push()
    before_outage = {r["name"] for r in ticks(daemon)}
    while time.monotonic() - down_at < OUTAGE:
        assert daemon.running, daemon.log_tail()
        health = daemon.get("/healthz")
        assert health is not None and health[0] == 200, (health, daemon.log_tail())
        found = readiness(daemon)
        assert found is not None and "repos" not in found[1]["failing"], found  # git is fine
        time.sleep(0.5)
    during = [r for r in ticks(daemon) if r["name"] not in before_outage]
    assert during, "no tick came due during the outage"
    assert metric(daemon.metrics(), "reconciler_work_errors_total", kind="reconcile") >= 1
    proxy.open()
    up_at = time.monotonic()

    # The commit that landed during the outage is applied, and its run succeeds on the cluster.
    daemon.wait_run("#late", lambda r: r["status"] == "succeeded", "the commit's run after the outage", 180)
    # Every tick, those due during the outage included, ran once on the cluster...
    daemon.wait(
        lambda: all(r["status"] == "succeeded" for r in ticks(daemon) if r["name"] in {d["name"] for d in during}),
        "the ticks of the outage to run",
        180,
    )
    # ...and the schedule goes on: ticks that came due after the outage run too.
    known = {r["name"] for r in ticks(daemon)}
    daemon.wait(
        lambda: sum(r["status"] == "succeeded" and r["name"] not in known for r in ticks(daemon)) >= 2,
        "two more ticks after the outage",
        90,
    )
    causes = [r["cause_id"] for r in ticks(daemon)]
    assert len(causes) == len(set(causes)), "a tick fired twice"
    reconciles = metric(daemon.metrics(), "reconciler_reconcile_total", repo=REPO, result="success")
    daemon.wait(
        lambda: metric(daemon.metrics(), "reconciler_reconcile_total", repo=REPO, result="success") >= reconciles + 2,
        "reconciles to go on",
    )
    daemon.wait(lambda: (r := readiness(daemon)) is not None and r[0] == 200, "ready again", 60)
    health = daemon.get("/healthz")
    assert health is not None and health[0] == 200
    print(f"recovered {time.monotonic() - up_at:.1f}s after the API server came back")
