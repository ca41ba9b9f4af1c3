"""The Kubernetes backend while its API server is gone or hung, on the real control plane behind a
TCP proxy the test closes (a restart: connection refused) and freezes (a hung server: connections
accepted, nothing answered).

Before: readiness read the informers' caches, so it stayed ready through both; a call to a frozen
server blocked for 52 s under a 30 s timeout (urllib3 retried every attempt of the client's own
retries) and logged nothing of its own, while urllib3 logged a `Retrying` warning per attempt.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import pytest

from reconciler.backends.base import TransientBackendError
from reconciler.backends.kubernetes import KubernetesBackend
from reconciler.backends.kubernetes.backend import READY_TIMEOUT
from tests.cluster.fixtures import ProxiedApi
from tests.cluster.poll import wait_for
from tests.integration.backends.test_kubernetes_backend import collect, job_run

pytestmark = pytest.mark.k8s

TIMEOUT = 3.0  # the backend's per-call bound in these tests (30 s by default)
SLACK = 2.0  # what a loaded 2-core machine may add to a bounded wait
CLIENT_LOGGER = "reconciler.backends.kubernetes.client"


@pytest.fixture
def proxied(k8s_api_proxy: ProxiedApi, k8s_namespace: str) -> Iterator[KubernetesBackend]:
    with contextlib.closing(k8s_api_proxy.api_client()) as api:
        backend = KubernetesBackend(api, namespace=k8s_namespace, request_timeout=TIMEOUT)
        try:
            yield backend
        finally:
            k8s_api_proxy.proxy.thaw()
            k8s_api_proxy.proxy.open()
            backend.close()


def timed(call: object) -> tuple[object, float]:
    started = time.monotonic()
    assert callable(call)
    return call(), time.monotonic() - started


def test_readiness_asks_the_api_server_not_the_cache(proxied: KubernetesBackend, k8s_api_proxy: ProxiedApi) -> None:
    proxy = k8s_api_proxy.proxy
    assert proxied.ready() is None

    proxy.close()
    problem, took = timed(proxied.ready)
    assert isinstance(problem, str) and "does not answer" in problem and proxy.address in problem, problem
    assert took < READY_TIMEOUT + SLACK

    proxy.open()
    wait_for(lambda: proxied.ready() is None, timeout=30, what="ready again after the restart")

    proxy.freeze()
    problem, took = timed(proxied.ready)
    assert isinstance(problem, str) and "no answer within" in problem, problem
    assert READY_TIMEOUT - 0.5 <= took < READY_TIMEOUT + SLACK

    proxy.thaw()
    wait_for(lambda: proxied.ready() is None, timeout=30, what="ready again after the freeze")


@pytest.mark.parametrize("outage", ["frozen", "closed"])
def test_a_call_is_bounded_logged_once_and_the_backend_recovers(
    proxied: KubernetesBackend,
    k8s_api_proxy: ProxiedApi,
    k8s_namespace: str,
    caplog: pytest.LogCaptureFixture,
    outage: str,
) -> None:
    proxy = k8s_api_proxy.proxy
    caplog.set_level(logging.DEBUG)
    if outage == "frozen":
        proxy.freeze()
    else:
        proxy.close()
    run = job_run(k8s_namespace, f"during-{outage}")
    started = time.monotonic()
    with pytest.raises(TransientBackendError) as raised:
        proxied.submit(run)
    took = time.monotonic() - started
    assert took < TIMEOUT + SLACK, f"the call took {took:.1f}s with a {TIMEOUT}s bound"
    path = f"/apis/batch/v1/namespaces/{k8s_namespace}/jobs"
    failed = [
        r for r in caplog.records if r.name == CLIENT_LOGGER and r.levelno >= logging.WARNING and path in r.getMessage()
    ]
    assert len(failed) == 1, [r.getMessage() for r in failed]
    expected = "no answer within" if outage == "frozen" else "cannot connect"
    assert expected in failed[0].getMessage() and expected in str(raised.value), failed[0].getMessage()
    assert not [r for r in caplog.records if r.name.startswith("urllib3") and "Retrying" in r.getMessage()]

    proxy.thaw()
    proxy.open()
    # The same run goes through once the server is back, and its status is observed: the
    # watches resumed on their own.
    wait_for(lambda: proxied.submit(run), timeout=60, what="the submit to go through after the outage")
    assert collect(proxied, run.name, {"succeeded", "failed"})[-1].status == "succeeded"
