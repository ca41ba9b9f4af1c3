"""The daemon against the real control plane: `reconciler run` with `backend: kubernetes`.

A commit with a job operation -> the daemon creates a batch/v1 Job carrying our ownership labels
-> the Job controller makes its pod, the scheduler binds it to the kwok node, kwok runs it to
completion, the Job controller completes the Job -> the backend's informers see it -> the
daemon's observer records `succeeded` in the tracking database. Nothing here is faked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.model import LABEL_MANAGED_BY, LABEL_RUN, MANAGED_BY
from tests.e2e.conftest import MakeDaemon
from tests.e2e.harness import job, metric
from tests.infra.git_server import GitRepoFactory

pytestmark = pytest.mark.k8s

REPO = "models"


def test_job_runs_on_the_cluster_and_succeeds_in_the_database(
    daemons: MakeDaemon,
    git_repo_factory: GitRepoFactory,
    k8s_cluster: Any,
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    git = git_repo_factory.create(
        "models",
        {
            ".polyaxon-reconciler.yaml": f"namespace: {k8s_namespace}\n",
            "ops/train.yaml": job("train", "echo trained"),
        },
    )
    daemon = daemons(
        [{"name": REPO, "url": git.file_url, "interval": 0.5}],
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        extra={
            "backend": "kubernetes",
            "kubernetes": {"kubeconfig": str(k8s_cluster.kubeconfig), "namespace": k8s_namespace},
        },
    ).start()

    run = daemon.wait_run("#train", lambda r: r["status"] != "created", "the run to be submitted", 60)
    jobs = json.loads(k8s_cluster.kubectl("get", "jobs", "-n", k8s_namespace, "-o", "json").stdout)["items"]
    [k8s_job] = [j for j in jobs if j["metadata"]["labels"].get(LABEL_RUN) == run["name"]]
    assert k8s_job["metadata"]["labels"][LABEL_MANAGED_BY] == MANAGED_BY

    done = daemon.wait_run("#train", lambda r: r["status"] == "succeeded", "the run to succeed", 60)
    assert done["name"] == run["name"] and done["commit"] == git.head() and done["backend"] == "kubernetes"
    history = [h["status"] for h in daemon.api_run(run["name"])["history"]]
    assert history[0] == "created" and history[-1] == "succeeded", history
    name = k8s_job["metadata"]["name"]
    live = json.loads(k8s_cluster.kubectl("get", "job", name, "-n", k8s_namespace, "-o", "json").stdout)
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in live["status"].get("conditions", []))

    # Still one Job and one run: the next polls adopt nothing and create nothing.
    polls = metric(daemon.metrics(), "reconciler_reconcile_total", repo=REPO, result="success")
    daemon.wait(
        lambda: metric(daemon.metrics(), "reconciler_reconcile_total", repo=REPO, result="success") >= polls + 2,
        "two more polls",
    )
    assert len(daemon.api_runs()) == 1
    jobs = json.loads(k8s_cluster.kubectl("get", "jobs", "-n", k8s_namespace, "-o", "json").stdout)["items"]
    assert len(jobs) == 1
    code, _ = daemon.terminate()
    assert code == 0


LONG_RUNNING = {
    "ops/web.yaml": """version: 1.1
kind: operation
name: web
component:
  run: {kind: service, ports: [8080], container: {image: nginx}}
""",
    "ops/ray.yaml": """version: 1.1
kind: operation
name: ray
component:
  run:
    kind: raycluster
    head: {container: {image: rayproject/ray}}
    workers: {small: {replicas: 1, container: {image: rayproject/ray}}}
""",
    "ops/dask.yaml": """version: 1.1
kind: operation
name: dask
component:
  run:
    kind: daskcluster
    worker: {replicas: 1, container: {image: ghcr.io/dask/dask}}
    scheduler: {container: {image: ghcr.io/dask/dask}}
""",
}


def test_pruning_every_long_running_kind_records_its_run_stopped(
    daemons: MakeDaemon,
    git_repo_factory: GitRepoFactory,
    k8s_cluster: Any,
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    """Removing a service, a raycluster and a daskcluster from Git deletes their objects and ends
    their runs `stopped` (reason Deleted), once; before, the runs stayed `running` for ever."""
    git = git_repo_factory.create(
        "models", {".polyaxon-reconciler.yaml": f"namespace: {k8s_namespace}\n", **LONG_RUNNING}
    )
    daemon = daemons(
        [{"name": REPO, "url": git.file_url, "interval": 0.5}],
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        extra={
            "backend": "kubernetes",
            "kubernetes": {"kubeconfig": str(k8s_cluster.kubeconfig), "namespace": k8s_namespace},
        },
    ).start()
    runs = {
        name: daemon.wait_run(f"#{name}", lambda r: r["status"] != "created", f"{name} submitted", 60)["name"]
        for name in ("web", "ray", "dask")
    }
    git.delete(*LONG_RUNNING)
    git.commit("remove the long-running ops")
    git.push()
    for op, run in runs.items():
        daemon.wait(lambda run=run: daemon.api_run(run)["status"] == "stopped", f"{op} recorded stopped", 60)
        history = daemon.api_run(run)["history"]
        assert history[-1]["reason"] in ("Deleted", "DeletedByReconciler"), history
        assert [h["status"] for h in history].count("stopped") == 1
    for kind in ("deployments", "rayclusters.ray.io", "daskclusters.kubernetes.dask.org"):
        left = json.loads(k8s_cluster.kubectl("get", kind, "-n", k8s_namespace, "-o", "json").stdout)["items"]
        assert [o for o in left if "deletionTimestamp" not in o["metadata"]] == [], kind
