"""What the side-by-side benchmarks share: a control plane, one API user per contender, the API
server's own count of each user's requests, a watch that timestamps objects as they appear, and
a process's CPU time and peak RSS.

Requests are counted by the API server, not by the clients: every contender runs as its own
ServiceAccount, and a FlowSchema per account (API Priority and Fairness) makes the server count
that account's requests in `apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}`.
Its priority level has more seats than the benchmark ever uses, so the accounting never
queues a request. (`apiserver_request_total` has no user or client label.)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.backends.kubernetes.client import ApiError, Client

USERS_NAMESPACE = "bench-users"
PRIORITY_LEVEL = "bench"
_DISPATCHED = re.compile(
    r"^apiserver_flowcontrol_dispatched_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.e+]+)$", re.M
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure(client: Client, path: str, body: dict[str, Any]) -> None:
    """POST `body` to `path`; an object that is already there is fine."""
    try:
        client.request("POST", path, verb="CREATE", body=body)
    except ApiError as e:
        if e.status != 409:
            raise


def create_namespace(client: Client, name: str) -> None:
    ensure(client, "/api/v1/namespaces", {"metadata": {"name": name}})


@dataclass(frozen=True)
class BenchUser:
    name: str  # the FlowSchema's name, e.g. "flux-kustomize"
    username: str  # system:serviceaccount:bench-users:<name>
    kubeconfig: Path


def bench_user(client: Client, server: str, ca_file: Path, directory: Path, name: str) -> BenchUser:
    """A ServiceAccount bound to cluster-admin, a FlowSchema counting its requests, and a kubeconfig
    with a token for it (valid two hours)."""
    create_namespace(client, USERS_NAMESPACE)
    ensure(
        client,
        "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations",
        {
            "metadata": {"name": PRIORITY_LEVEL},
            "spec": {
                "type": "Limited",
                "limited": {
                    "nominalConcurrencyShares": 200,
                    "lendablePercent": 0,
                    "limitResponse": {
                        "type": "Queue",
                        "queuing": {"queues": 64, "handSize": 6, "queueLengthLimit": 500},
                    },
                },
            },
        },
    )
    ensure(
        client,
        f"/api/v1/namespaces/{USERS_NAMESPACE}/serviceaccounts",
        {"metadata": {"name": name}},
    )
    ensure(
        client,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "metadata": {"name": f"bench-{name}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": USERS_NAMESPACE}],
        },
    )
    ensure(
        client,
        "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas",
        {
            "metadata": {"name": name},
            "spec": {
                # Before "service-accounts" (9000) and every default schema a ServiceAccount matches.
                "matchingPrecedence": 500,
                "priorityLevelConfiguration": {"name": PRIORITY_LEVEL},
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [
                    {
                        "subjects": [
                            {"kind": "ServiceAccount", "serviceAccount": {"name": name, "namespace": USERS_NAMESPACE}}
                        ],
                        "resourceRules": [
                            {
                                "verbs": ["*"],
                                "apiGroups": ["*"],
                                "resources": ["*"],
                                "namespaces": ["*"],
                                "clusterScope": True,
                            }
                        ],
                        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                    }
                ],
            },
        },
    )
    token = client.request(
        "POST",
        f"/api/v1/namespaces/{USERS_NAMESPACE}/serviceaccounts/{name}/token",
        verb="CREATE",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 7200}},
    )["status"]["token"]
    path = directory / f"{name}.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "bench", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
                "users": [{"name": name, "user": {"token": token}}],
                "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": name}}],
                "current-context": "bench",
            }
        )
    )
    path.chmod(0o600)
    return BenchUser(name, f"system:serviceaccount:{USERS_NAMESPACE}:{name}", path)


def dispatched_requests(client: Client) -> dict[str, float]:
    """Requests the API server has dispatched so far, per FlowSchema (its /metrics)."""
    text = client.text("/metrics", {})
    out: dict[str, float] = {}
    for m in _DISPATCHED.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels")))
        schema = labels.get("flow_schema", "")
        out[schema] = out.get(schema, 0.0) + float(m.group("value"))
    return out


class Requests:
    """Requests per user between `start()` and `stop()`, from the API server's metrics."""

    def __init__(self, client: Client, users: list[str]) -> None:
        self.client = client
        self.users = users
        self._before: dict[str, float] = {}
        self.counts: dict[str, float] = {u: 0.0 for u in users}

    def start(self) -> None:
        self._before = dispatched_requests(self.client)

    def stop(self) -> dict[str, float]:
        after = dispatched_requests(self.client)
        for user in self.users:
            self.counts[user] += after.get(user, 0.0) - self._before.get(user, 0.0)
        return self.counts


# --- processes --------------------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclass
class Process:
    """A contender's process, its output in a log file; stopped with SIGTERM, then SIGKILL."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        out = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
        )
        out.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)


def wait_until(what: str, ready: Callable[[], bool], timeout: float, alive: Callable[[], None] | None = None) -> None:
    """Wait for a condition with a deadline (short sleeps between checks, never as sync)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        if alive is not None:
            alive()
        try:
            if ready():
                return
        except (OSError, ApiError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def http_ok(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as resp:
        return bool(resp.status == 200)
    return False


# --- watching objects appear ------------------------------------------------------------------


class Watch:
    """Timestamps of objects of one resource in one namespace, from a watch (never a poll).

    `first_seen[name]` is the monotonic time the ADDED event arrived; `wait(cond)` blocks until
    a condition over the seen names holds, woken by each event.
    """

    def __init__(self, client: Client, path: str, project: Callable[[dict[str, Any]], Any] = lambda obj: obj) -> None:
        """`project` is what is kept of each object in `objects` (all of it by default)."""
        self.client = client
        self.path = path
        self.project = project
        self.first_seen: dict[str, float] = {}
        self.first_seen_wall: dict[str, float] = {}  # time.time() of the same moments
        self.objects: dict[str, Any] = {}
        self._cond = threading.Condition()
        self._holder: list[Any] = []
        self._stopped = False
        listed = client.request("GET", path, verb="LIST", query={"limit": 0})
        self._version = listed["metadata"]["resourceVersion"]
        for item in listed.get("items") or []:
            self._seen(item, 0.0)
        self._thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)
        self._thread.start()

    def _seen(self, obj: dict[str, Any], at: float, wall: float = 0.0) -> None:
        name = obj["metadata"]["name"]
        self.objects[name] = self.project(obj)
        if name not in self.first_seen:
            self.first_seen[name] = at
            self.first_seen_wall[name] = wall

    def _run(self) -> None:
        while not self._stopped:
            try:
                query = {"resourceVersion": self._version, "allowWatchBookmarks": True, "timeoutSeconds": 600}
                for event in self.client.watch(self.path, query, self._holder):
                    now, wall = time.monotonic(), time.time()
                    obj = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion")
                    if version:
                        self._version = version
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        with self._cond:
                            self._seen(obj, now, wall)
                            self._cond.notify_all()
                    elif event.get("type") == "DELETED":
                        with self._cond:
                            self.objects.pop(obj["metadata"]["name"], None)
                            self._cond.notify_all()
                    elif event.get("type") == "ERROR":
                        raise RuntimeError(f"watch {self.path}: {json.dumps(obj)[:300]}")
            except Exception:
                if self._stopped:
                    return
                time.sleep(0.2)

    def wait(self, what: str, condition: Callable[[Watch], bool], timeout: float) -> float:
        """Block until `condition(self)` holds; return the monotonic time it first did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} ({len(self.objects)} seen)")
                self._cond.wait(min(left, 5.0))
        return time.monotonic()

    def stop(self) -> None:
        self._stopped = True
        for response in list(self._holder):
            with contextlib.suppress(Exception):
                response.shutdown()


@contextlib.contextmanager
def watching(client: Client, path: str, project: Callable[[dict[str, Any]], Any] = lambda obj: obj) -> Iterator[Watch]:
    watch = Watch(client, path, project)
    try:
        yield watch
    finally:
        watch.stop()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
