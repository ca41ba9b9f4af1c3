"""A real Kubernetes control plane on loopback ports, started and stopped by the tests.

envtest-style (etcd + kube-apiserver) is not enough for the reconciler: it needs Jobs that really
complete, Pods that really get scheduled, and ServiceAccounts that appear by themselves. So this
also runs kube-controller-manager, kube-scheduler and kwok, which plays the kubelet of one fake
Node and moves pods through their phases by the stages in tests/cluster/kwok/.

Every component logs to a file in the cluster's temp dir; when startup fails, the logs are
printed, and the whole tree (process groups, temp dir) is removed on stop whatever happened.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from tests.cluster import pki as pki_mod
from tests.cluster.poll import WaitTimeout, wait_for

HERE = Path(__file__).parent
CRD_DIR = HERE / "crds"
KWOK_STAGE_DIR = HERE / "kwok"
KWOK_CRD_DIR = HERE / "kwok-crds"
# What every pod prints until a test gives it a log of its own (kwok's ClusterLogs, `_default_logs`).
DEFAULT_POD_LOG = "simulated log of a kwok pod"

FAKE_NODE_NAME = "kwok-node-0"
# Labelling a pod with this makes kwok fail it (tests/cluster/kwok/pod-fail.yaml).
FAIL_LABEL = "reconciler.test/fail"

STARTUP_TIMEOUT = 120.0
STOP_GRACE = 10.0


class ControlPlaneError(RuntimeError):
    """A component did not start; the message carries the tail of the logs."""


@dataclass
class _Component:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()


def _die_with_parent() -> None:
    """Runs in the child before exec: if the test process is killed outright (pytest-timeout,
    SIGKILL), the kernel kills the component too instead of leaving an orphan apiserver."""
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _free_ports(count: int) -> list[int]:
    """Ports the kernel considers free right now; all are held until every one is chosen so
    that the same port is never handed out twice."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok in one temp dir.

    Use as a context manager, or call start() and stop(). `watch_cache=False` (the default) makes
    the apiserver serve watches straight from etcd, so a test can provoke "410 Gone" on any
    resource deterministically by compacting etcd (compact_etcd()); with the watch cache on, a
    watch only expires once the cache's time-based window has moved past it.
    """

    def __init__(
        self,
        bin_dir: Path,
        *,
        crd_dir: Path | None = CRD_DIR,
        stage_dir: Path = KWOK_STAGE_DIR,
        watch_cache: bool = False,
        keep_dir: bool = False,
        controller_manager_args: Sequence[str] = (),
    ) -> None:
        self.bin_dir = bin_dir
        self.crd_dir = crd_dir
        self.stage_dir = stage_dir
        self.watch_cache = watch_cache
        self.keep_dir = keep_dir
        # Extra kube-controller-manager flags, e.g. `--controllers=*,-cronjob` for a benchmark
        # that runs the CronJob controller in a kube-controller-manager of its own.
        self.controller_manager_args = list(controller_manager_args)
        self.dir: Path | None = None
        self._components: list[_Component] = []
        self._kubeconfig: Path | None = None
        self._ports: dict[str, int] = {}

    # -- public surface -------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        if self._kubeconfig is None:
            raise RuntimeError("control plane not started")
        return self._kubeconfig

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._ports['apiserver']}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self._ports['etcd']}"

    @property
    def fake_node(self) -> str:
        return FAKE_NODE_NAME

    def api_client(self) -> k8s.ApiClient:
        """A new client authenticated as the cluster admin (system:masters); close it when done."""
        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the cluster's own kubectl against it; raises with stderr when it fails and check."""
        assert self.dir is not None
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "HOME": str(self.dir)},
            check=False,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, output=result.stdout, stderr=result.stderr
            )
        return result

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision and return that revision; every
        resourceVersion older than it becomes "too old" (410 Gone) for watches."""
        header = self._etcd_post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]
        revision = int(header["revision"])
        self._etcd_post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def logs(self) -> str:
        """The tail of every component's log, for failure messages."""
        parts = []
        for c in self._components:
            with contextlib.suppress(OSError):
                text = c.log_path.read_text(errors="replace")
                tail = "\n".join(text.splitlines()[-40:])
                parts.append(f"----- {c.name} ({c.log_path}) exit={c.exited()} -----\n{tail}")
        return "\n".join(parts)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="reconciler-k8s-"))
        try:
            self._start()
        except BaseException as exc:
            message = f"test control plane failed to start: {exc}\n{self.logs()}"
            print(message, file=sys.stderr)
            self.stop()
            if isinstance(exc, Exception):
                raise ControlPlaneError(message) from exc
            raise

    def stop(self) -> None:
        """Stop every component (newest first) by process group, then remove the temp dir."""
        for c in reversed(self._components):
            self._terminate(c)
        if self.dir is not None and not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _start(self) -> None:
        assert self.dir is not None
        names = ["etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok"]
        self._ports = dict(zip(names, _free_ports(len(names)), strict=True))
        pki = pki_mod.generate(self.dir / "pki")
        self._kubeconfig = self._write_kubeconfig(pki)

        self._start_etcd()
        self._wait_http("etcd", f"{self.etcd_url}/health", lambda body: json.loads(body).get("health") == "true")

        self._start_apiserver(pki)
        self._wait_https_admin("kube-apiserver", "/readyz", pki)

        # The rest only need the apiserver; starting them together saves their start-up times.
        self._start_controller_manager(pki)
        self._start_scheduler()
        self._start_kwok(pki)
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # self-signed serving certs of KCM and scheduler
        port = self._ports
        self._wait_http(
            "kube-controller-manager",
            f"https://127.0.0.1:{port['controller-manager']}/healthz",
            context=insecure,
        )
        self._wait_http("kube-scheduler", f"https://127.0.0.1:{port['scheduler']}/healthz", context=insecure)
        self._wait_http("kwok", f"https://127.0.0.1:{port['kwok']}/healthz", context=insecure)

        with contextlib.closing(self.api_client()) as api:
            self._create_fake_node(api)
            wait_service_account(api, "default")
            install_crds(api, sorted(KWOK_CRD_DIR.glob("*.yaml")))  # kwok's own, for pod logs
            if self.crd_dir is not None:
                install_crds(api, sorted(self.crd_dir.glob("*.yaml")))

    # -- components -----------------------------------------------------------------------------

    def _launch(self, name: str, argv: Sequence[str]) -> _Component:
        assert self.dir is not None
        log_path = self.dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(exist_ok=True)
        component = _Component(name, list(argv), log_path)
        component.log_file = log_path.open("ab")
        component.process = subprocess.Popen(
            component.argv,
            stdin=subprocess.DEVNULL,
            stdout=component.log_file,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            # HOME in the temp dir keeps kwok from loading ~/.kwok and kubectl from caching in ~.
            env={**os.environ, "HOME": str(self.dir)},
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._components.append(component)
        return component

    def _start_etcd(self) -> None:
        assert self.dir is not None
        client = f"http://127.0.0.1:{self._ports['etcd']}"
        peer = f"http://127.0.0.1:{self._ports['etcd-peer']}"
        self._launch(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=node0",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=node0={peer}",
                # Durability is worthless for a throwaway cluster and fsync is slow on shared disks.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self, pki: pki_mod.Pki) -> None:
        assert self.dir is not None
        self._launch(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self._ports['apiserver']}",
                f"--cert-dir={self.dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--service-account-key-file={pki.sa_public_key}",
                f"--service-account-signing-key-file={pki.sa_private_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                # No kubelet or kube-proxy will ever serve the `kubernetes` Service endpoints.
                "--endpoint-reconciler-type=none",
                f"--watch-cache={'true' if self.watch_cache else 'false'}",
                "--profiling=false",
                # pods/log is proxied to the node's kubelet (kwok's server) at its InternalIP.
                "--kubelet-preferred-address-types=InternalIP",
            ],
        )

    def _start_controller_manager(self, pki: pki_mod.Pki) -> None:
        assert self.dir is not None
        self._launch(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self._ports['controller-manager']}",
                f"--cert-dir={self.dir / 'kcm-certs'}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                f"--root-ca-file={pki.ca_cert}",
                f"--service-account-private-key-file={pki.sa_private_key}",
                "--leader-elect=false",
                "--profiling=false",
                *self.controller_manager_args,
            ],
        )

    def _start_scheduler(self) -> None:
        assert self.dir is not None
        self._launch(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self._ports['scheduler']}",
                f"--cert-dir={self.dir / 'scheduler-certs'}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )

    def _default_logs(self) -> Path:
        """kwok's config giving every pod a log (ClusterLogs) until a test names its own (a `Logs`
        object, see tests/cluster/pod_logs.py): one line, in the CRI format kwok reads."""
        assert self.dir is not None
        logs = self.dir / "kwok-logs"
        logs.mkdir(exist_ok=True)
        default = logs / "default.log"
        default.write_text(f"2026-01-01T00:00:00.000000001Z stdout F {DEFAULT_POD_LOG}\n")
        config = self.dir / "kwok-cluster-logs.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kwok.x-k8s.io/v1alpha1",
                    "kind": "ClusterLogs",
                    "metadata": {"name": "default"},
                    "spec": {"logs": [{"containers": [], "logsFile": str(default), "follow": False}]},
                }
            )
        )
        return config

    def _start_kwok(self, pki: pki_mod.Pki) -> None:
        stages = sorted(self.stage_dir.glob("*.yaml"))
        if not stages:
            raise ControlPlaneError(f"no kwok stages in {self.stage_dir}")
        stages.append(self._default_logs())
        self._launch(
            "kwok",
            [
                str(self.bin_dir / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                *(f"--config={s}" for s in stages),
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-lease-duration-seconds=40",
                "--cidr=10.244.0.0/16",
                "--node-ip=127.0.0.1",
                f"--server-address=127.0.0.1:{self._ports['kwok']}",
                # The fake node's kubelet endpoint: the API server's pods/log reaches kwok here, over
                # TLS (the API server always speaks HTTPS to kubelets), and kwok serves each pod's
                # log from the file its `Logs` object names (tests write those; see `pod_logs`).
                f"--node-port={self._ports['kwok']}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                "--enable-crds=Logs",
            ],
        )

    def _terminate(self, c: _Component) -> None:
        proc = c.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_GRACE)
        if c.log_file is not None:
            c.log_file.close()
            c.log_file = None

    # -- readiness ------------------------------------------------------------------------------

    def _check_alive(self) -> None:
        for c in self._components:
            code = c.exited()
            if code is not None:
                raise ControlPlaneError(f"{c.name} exited with code {code}")

    def _wait_http(
        self,
        what: str,
        url: str,
        accept: Any = None,
        context: ssl.SSLContext | None = None,
        timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        def ready() -> bool:
            self._check_alive()
            with urllib.request.urlopen(url, timeout=5, context=context) as resp:
                body = resp.read().decode()
                return resp.status == 200 and (accept is None or bool(accept(body)))

        self._wait_or_die(ready, f"{what} at {url}", timeout)

    def _wait_https_admin(self, what: str, path: str, pki: pki_mod.Pki) -> None:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._wait_http(what, f"{self.server}{path}", context=context)

    def _wait_or_die(self, ready: Any, what: str, timeout: float) -> None:
        try:
            wait_for(ready, timeout=timeout, what=what, max_interval=0.5)
        except WaitTimeout:
            self._check_alive()  # a crash is the better explanation than a timeout
            raise

    # -- cluster content ------------------------------------------------------------------------

    def _write_kubeconfig(self, pki: pki_mod.Pki) -> Path:
        assert self.dir is not None
        path = self.dir / "admin.kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.server, "certificate-authority": str(pki.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)},
                }
            ],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def _create_fake_node(self, api: k8s.ApiClient) -> None:
        resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": FAKE_NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": FAKE_NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
            "status": {"allocatable": resources, "capacity": resources},
        }
        core = k8s.CoreV1Api(api)
        core.create_node(node)

        def ready() -> bool:
            self._check_alive()
            n = core.read_node(FAKE_NODE_NAME)
            conditions = {c.type: c.status for c in (n.status.conditions or [])}
            # The node lifecycle controller taints a new node not-ready until it sees Ready.
            not_ready_taint = any(t.key.startswith("node.kubernetes.io/") for t in (n.spec.taints or []))
            return conditions.get("Ready") == "True" and not not_ready_taint

        self._wait_or_die(ready, f"fake node {FAKE_NODE_NAME} Ready and untainted", STARTUP_TIMEOUT)

    def _etcd_post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.etcd_url}{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result


def wait_service_account(api: k8s.ApiClient, namespace: str, timeout: float = 60) -> None:
    """Pods cannot be created in a namespace until the controller manager gave it its default
    ServiceAccount (the ServiceAccount admission plugin rejects them)."""
    core = k8s.CoreV1Api(api)

    def exists() -> bool:
        try:
            core.read_namespaced_service_account("default", namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    wait_for(exists, timeout=timeout, what=f"ServiceAccount default in namespace {namespace}")


def install_crds(api: k8s.ApiClient, paths: Sequence[Path], timeout: float = 60) -> list[str]:
    """Create the CRDs in `paths` and wait until each is Established (served); return names."""
    ext = k8s.ApiextensionsV1Api(api)
    names = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                ext.create_custom_resource_definition(doc)
                names.append(doc["metadata"]["name"])

    def established() -> bool:
        for name in names:
            crd = ext.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (crd.status.conditions or [])}
            if conditions.get("Established") != "True":
                return False
        return True

    wait_for(established, timeout=timeout, what=f"CRDs Established: {', '.join(names)}")
    return names
