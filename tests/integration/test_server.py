"""The HTTP server on a real socket: health, readiness and metrics."""

from __future__ import annotations

import urllib.error
import urllib.request

from reconciler.metrics import Metrics
from reconciler.server import Check, HttpServer, build_app


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_readiness_and_metrics() -> None:
    metrics = Metrics()
    state = {"db": None}
    server = HttpServer(build_app(metrics, [Check("database", lambda: state["db"])]), "127.0.0.1", 0)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert fetch(base + "/healthz") == (200, "ok\n")
        assert fetch(base + "/readyz")[0] == 200
        state["db"] = "connection refused"
        code, body = fetch(base + "/readyz")
        assert code == 503 and "connection refused" in body and "database" in body
        metrics.reconcile_total.labels(repo="examples", result="success").inc()
        code, body = fetch(base + "/metrics")
        assert code == 200
        assert 'reconciler_reconcile_total{repo="examples",result="success"} 1.0' in body
    finally:
        server.stop()
