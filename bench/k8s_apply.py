"""Benchmark: 500 Jobs applied through the Kubernetes backend and through `kubectl apply
--server-side`, on the same manifests, against the test control plane; then the API calls the
backend makes while idle.

    python -m bench.k8s_apply [--jobs 500] [--idle-seconds 60]

Prints both times and their ratio (backend / kubectl, target <= 1.0), and the calls per verb
during the idle minute (target: zero LIST). Each side gets its own namespace, and the next side
starts only when the Job controller has finished with the first side's Jobs, so neither pays
for the other's pods.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

from reconciler.backends.kubernetes import KubernetesBackend
from reconciler.backends.kubernetes.client import Client
from reconciler.model import Cause, OpKey, RunRequest, spec_hash
from reconciler.render import render, to_yaml
from tests.cluster import binaries
from tests.cluster.controlplane import ControlPlane, wait_service_account
from tests.cluster.poll import wait_for


def runs(namespace: str, count: int) -> list[RunRequest]:
    out = []
    for i in range(count):
        effective = {"version": 1.1, "run": {"kind": "job", "container": {"image": "busybox", "args": [str(i)]}}}
        name = f"bench-{i:04d}"
        out.append(
            RunRequest(
                name=name,
                op=OpKey("bench", f"jobs/{name}.yaml", name),
                kind="job",
                spec_hash=spec_hash(effective),
                effective=effective,
                cause=Cause.MANUAL,
                cause_id="bench",
                commit="bench",
                namespace=namespace,
            )
        )
    return out


def wait_jobs_done(client: Client, namespace: str, count: int) -> None:
    def done() -> bool:
        jobs = client.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs", verb="LIST")["items"]
        finished = [
            j for j in jobs if (j.get("status") or {}).get("completionTime") or (j.get("status") or {}).get("failed")
        ]
        return len(finished) >= count

    wait_for(done, timeout=600, what=f"{count} Jobs in {namespace} to finish", max_interval=2.0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args()
    located = binaries.locate()
    if located.bin_dir is None:
        print(f"control plane binaries unavailable: {located.reason} (run `make k8s-binaries`)", file=sys.stderr)
        return 2
    with ControlPlane(located.bin_dir) as plane, contextlib.closing(plane.api_client()) as api:
        client = Client(api)
        for ns in ("bench-backend", "bench-kubectl"):
            client.request("POST", "/api/v1/namespaces", verb="CREATE", body={"metadata": {"name": ns}})
            wait_service_account(api, ns)

        # kubectl first, on the rendered manifests of the same runs.
        kubectl_runs = runs("bench-kubectl", args.jobs)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "jobs.yaml"
            path.write_text("".join(to_yaml(render(r)) for r in kubectl_runs))
            started = time.perf_counter()
            plane.kubectl("apply", "--server-side", "--field-manager=polyaxon-reconciler", "-f", str(path), timeout=900)
            kubectl_seconds = time.perf_counter() - started
        wait_jobs_done(client, "bench-kubectl", args.jobs)

        backend = KubernetesBackend(api, namespace="bench-backend")
        try:
            backend_runs = runs("bench-backend", args.jobs)
            started = time.perf_counter()
            for run in backend_runs:
                backend.submit(run)
            backend_seconds = time.perf_counter() - started
            wait_jobs_done(client, "bench-backend", args.jobs)
            # Drain what the watches delivered, then measure a quiet period.
            for _ in backend.observe(timeout=1.0):
                pass
            before = dict(backend.client.calls)
            idle_until = time.monotonic() + args.idle_seconds
            while time.monotonic() < idle_until:
                for _ in backend.observe(timeout=max(0.0, idle_until - time.monotonic())):
                    pass
            idle = {k: backend.client.calls[k] - before.get(k, 0) for k in backend.client.calls}
        finally:
            backend.close()

    per_minute = 60.0 / args.idle_seconds
    print(f"jobs:                         {args.jobs}")
    print(f"kubectl apply --server-side:  {kubectl_seconds:.2f}s ({args.jobs / kubectl_seconds:.0f} objects/s)")
    print(f"backend submit:               {backend_seconds:.2f}s ({args.jobs / backend_seconds:.0f} objects/s)")
    print(f"ratio backend/kubectl:        {backend_seconds / kubectl_seconds:.2f} (target <= 1.0)")
    calls = ", ".join(f"{k}={v * per_minute:.1f}" for k, v in sorted(idle.items()) if v) or "none"
    print(f"API calls per idle minute:    {calls}; LIST={idle.get('LIST', 0) * per_minute:.1f} (target 0)")
    print(
        json.dumps(
            {
                "jobs": args.jobs,
                "backend_seconds": round(backend_seconds, 3),
                "kubectl_seconds": round(kubectl_seconds, 3),
                "ratio": round(backend_seconds / kubectl_seconds, 3),
                "idle_calls_per_minute": {k: round(v * per_minute, 1) for k, v in sorted(idle.items()) if v},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
