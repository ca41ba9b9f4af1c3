"""pytest plugin: the `k8s_cluster` and `k8s_namespace` fixtures.

One control plane per test session (starting one takes seconds, building it takes many
minutes, see build.sh), one fresh namespace per test. When the binaries could not be built the
tests that need them are skipped, and the end of the run says so in a line nobody can miss:
a quietly skipped cluster suite would look like a green one.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tests.cluster import binaries
from tests.cluster.controlplane import ControlPlane, wait_service_account
from tests.infra.tcp_proxy import TcpProxy

_skip_reason: list[str] = []


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[ControlPlane]:
    """A running control plane with one kwok Node and the operator CRDs installed.

    Gives `.kubeconfig`, `.api_client()`, `.bin_dir`, `.kubectl(*args)`, `.compact_etcd()`.
    RECONCILER_K8S_KEEP=1 keeps its temp dir (logs, etcd data) for debugging.
    """
    located = binaries.locate()
    if located.bin_dir is None:
        message = f"Kubernetes test binaries unavailable: {located.reason}"
        if os.environ.get("CI") == "true":
            # CI is honest: infrastructure that cannot be built fails the run, never skips it.
            pytest.fail(message)
        _skip_reason.append(located.reason)
        pytest.skip(message)
    plane = ControlPlane(located.bin_dir, keep_dir=os.environ.get("RECONCILER_K8S_KEEP") == "1")
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def k8s_namespace(k8s_cluster: ControlPlane) -> Iterator[str]:
    """A namespace of its own for one test, with its default ServiceAccount already there."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    with contextlib.closing(k8s_cluster.api_client()) as api:
        core = k8s.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": name, "labels": {"reconciler.test/namespace": "true"}}})
        wait_service_account(api, name)
        try:
            yield name
        finally:
            # The namespace controller deletes the content in the background; not waiting for it
            # keeps tests fast, and unique names keep the leftovers out of the next test's way.
            with contextlib.suppress(ApiException):
                core.delete_namespace(name)


@dataclass
class ProxiedApi:
    """The cluster's API server behind a `TcpProxy` the test controls: `.proxy.close()` /
    `.open()` is an API server restart, `.freeze()` / `.thaw()` a hung one. `.kubeconfig` is the
    admin kubeconfig aimed at the proxy."""

    proxy: TcpProxy
    kubeconfig: Path

    def api_client(self) -> k8s.ApiClient:
        from kubernetes import config as k8s_config

        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))


@pytest.fixture
def k8s_api_proxy(k8s_cluster: ControlPlane, tmp_path: Path) -> Iterator[ProxiedApi]:
    """The API server behind a proxy of this test's own (see `ProxiedApi`)."""
    upstream = urlsplit(k8s_cluster.server)
    assert upstream.hostname is not None and upstream.port is not None
    proxy = TcpProxy(upstream.hostname, upstream.port).start()
    config = yaml.safe_load(k8s_cluster.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://{proxy.address}"
    path = tmp_path / "proxied.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    try:
        yield ProxiedApi(proxy, path)
    finally:
        proxy.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skip_reason:
        terminalreporter.write_sep("!", f"KUBERNETES TESTS SKIPPED: {_skip_reason[0]}", red=True, bold=True)
