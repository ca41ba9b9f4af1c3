"""The side-by-side benchmarks (bench/flux_bench.py, bench/cron_bench.py) report each contender's
API requests as the API server counts them for that contender's own user, and time objects by a
watch. Their figures are only as good as that accounting, so it is checked here (no timing)."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest
from kubernetes import config as k8s_config

from bench._cluster import Requests, bench_user, create_namespace, watching
from reconciler.backends.kubernetes.client import Client
from tests.cluster.controlplane import ControlPlane

pytestmark = pytest.mark.k8s


def test_each_users_requests_are_counted_for_it_alone(k8s_cluster: ControlPlane, tmp_path: Path) -> None:
    assert k8s_cluster.dir is not None
    ca = k8s_cluster.dir / "pki" / "ca.crt"
    suffix = uuid.uuid4().hex[:8]
    with contextlib.closing(k8s_cluster.api_client()) as api:
        admin = Client(api)
        one = bench_user(admin, k8s_cluster.server, ca, tmp_path, f"acct-one-{suffix}")
        other = bench_user(admin, k8s_cluster.server, ca, tmp_path, f"acct-other-{suffix}")
        requests = Requests(admin, [one.name, other.name])
        requests.start()
        api_one = k8s_config.new_client_from_config(config_file=str(one.kubeconfig))  # type: ignore[no-untyped-call]
        with contextlib.closing(api_one):
            client = Client(api_one)
            for _ in range(5):
                client.request("GET", "/api/v1/namespaces/default", verb="GET")
        counts = requests.stop()
    assert counts == {one.name: 5.0, other.name: 0.0}


def test_a_watch_times_each_object_as_it_appears(k8s_cluster: ControlPlane) -> None:
    namespace = f"acct-{uuid.uuid4().hex[:8]}"
    with contextlib.closing(k8s_cluster.api_client()) as api:
        admin = Client(api)
        create_namespace(admin, namespace)
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        admin.request("POST", path, verb="CREATE", body={"metadata": {"name": "before"}})
        with watching(admin, path, lambda obj: obj["metadata"]["name"]) as watch:
            admin.request("POST", path, verb="CREATE", body={"metadata": {"name": "after"}})
            watch.wait("configmap after", lambda w: "after" in w.first_seen, timeout=60)
        # Listed objects have no arrival time (0.0); watched ones have theirs, and what `project`
        # kept of them.
        assert watch.first_seen["before"] == 0.0
        assert watch.first_seen["after"] > 0.0 and watch.first_seen_wall["after"] > 0.0
        assert watch.objects["after"] == "after"
