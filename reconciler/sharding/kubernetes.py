"""Leases as Kubernetes objects (`sharding.mode: kubernetes`): coordination.k8s.io/v1 Leases in the
daemon's namespace.

- One member Lease per replica (`<prefix>-m-<hash of identity>`), renewed every third of
  `lease_seconds` (`renewTime`), deleted when the replica stops.
- One Lease per repo (`<prefix>-r-<hash of repo>`): `holderIdentity` is the holding process,
  `leaseTransitions` the generation (the fencing token), bumped at every acquisition. As in the
  `database` mode, a repo lease is held while its holder's member Lease lives, so renewing one
  object per replica keeps all its repos.

Liveness is judged as client-go's leader election judges it, by observation rather than by the
holder's clock: a member is dead once *this* replica has seen its Lease unchanged for
`leaseDurationSeconds` (a replica just started waits that long before taking anyone's repos).
Every write is a compare-and-swap on `resourceVersion`, so two replicas never both take a lease.
Calls are bounded (one timeout, no urllib3 retries): the shard's next round is the retry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes.client import ApiClient

from reconciler.model import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY

GROUP_PATH = "/apis/coordination.k8s.io/v1"
LABEL_LEASE = "reconciler.polyaxon.io/lease"  # member | repo
ANNOTATION_IDENTITY = "reconciler.polyaxon.io/identity"
ANNOTATION_REPO = "reconciler.polyaxon.io/repo"
# Member Leases nobody renewed for this many lease durations are deleted by any replica.
FORGET_AFTER = 20


class LeaseApiError(Exception):
    """The API server could not be reached or refused a lease call."""


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _micro_time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Observed:
    """When this replica last saw each Lease change (resourceVersion), by its monotonic clock."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self.monotonic = monotonic
        self._seen: dict[str, tuple[str, float]] = {}

    def unchanged_for(self, name: str, version: str) -> float:
        now = self.monotonic()
        seen = self._seen.get(name)
        if seen is None or seen[0] != version:
            self._seen[name] = (version, now)
            return 0.0
        return now - seen[1]

    def keep(self, names: Collection[str]) -> None:
        for name in set(self._seen) - set(names):
            del self._seen[name]


class KubernetesLeases:
    def __init__(
        self,
        api_client: ApiClient,
        *,
        namespace: str,
        instance: str,
        identity: str,
        holder: str,
        lease_seconds: float,
        timeout: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.instance = instance
        self.identity = identity
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.duration = max(1, math.ceil(lease_seconds))
        # A call may take a third of a round at most: a hung API server costs one round, not the lease.
        self.timeout = timeout if timeout is not None else max(1.0, lease_seconds / 9)
        self.clock = clock
        self.prefix = f"reconciler-{(instance or 'default')[:8]}"
        self.member_name = f"{self.prefix}-m-{_hash(identity)}"
        self._observed = _Observed(monotonic)
        self._member: dict[str, Any] | None = None  # our member Lease as last written
        self._repo_leases: dict[str, dict[str, Any]] = {}  # held repo Leases as last written
        self._live_holders: set[str] = set()
        self._lock = threading.Lock()
        self.next_expiry: float | None = None

    # --- the API ----------------------------------------------------------------------------------

    def _path(self, name: str | None = None) -> str:
        base = f"{GROUP_PATH}/namespaces/{self.namespace}/leases"
        return f"{base}/{name}" if name else base

    def _call(
        self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        params = list((query or {}).items())
        _, url, headers, _, _ = self.api_client.param_serialize(
            method, path, query_params=params or None, header_params=headers, auth_settings=["BearerToken"]
        )
        try:
            response = self.api_client.rest_client.pool_manager.request(
                method,
                url,
                body=None if body is None else json.dumps(body).encode(),
                headers=headers,
                timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
                retries=False,
            )
        except urllib3.exceptions.HTTPError as e:
            raise LeaseApiError(f"{method} {path}: {e}") from e
        try:
            data = json.loads(response.data) if response.data else {}
        except ValueError:
            data = {"message": response.data[:300].decode(errors="replace")}
        if response.status >= 500 or response.status in (401, 403, 429):
            raise LeaseApiError(f"{method} {path}: {response.status} {data.get('message', '')}")
        return response.status, data if isinstance(data, dict) else {}

    def _list(self, kind: str) -> list[dict[str, Any]]:
        selector = (
            f"{LABEL_INSTANCE}={self.instance},{LABEL_LEASE}={kind}" if self.instance else f"{LABEL_LEASE}={kind}"
        )
        status, data = self._call("GET", self._path(), query={"labelSelector": selector})
        if status != 200:
            raise LeaseApiError(f"listing {kind} leases: {status} {data.get('message', '')}")
        return list(data.get("items") or [])

    def _lease(self, name: str, kind: str, annotations: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
        labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_LEASE: kind}
        if self.instance:
            labels[LABEL_INSTANCE] = self.instance
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels, "annotations": annotations},
            "spec": spec,
        }

    def _put(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Replace `obj` if nobody changed it since it was read (None: someone did)."""
        status, data = self._call("PUT", self._path(obj["metadata"]["name"]), obj)
        if status == 200:
            return data
        if status in (404, 409):
            return None
        raise LeaseApiError(f"updating lease {obj['metadata']['name']}: {status} {data.get('message', '')}")

    def _create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        status, data = self._call("POST", self._path(), obj)
        if status == 201:
            return data
        if status == 409:
            return None
        raise LeaseApiError(f"creating lease {obj['metadata']['name']}: {status} {data.get('message', '')}")

    # --- membership -------------------------------------------------------------------------------

    def join(self) -> bool:
        now = _micro_time(self.clock())
        with self._lock:
            current = self._member
        if current is not None:
            renewed = self._put(_with_spec(current, renewTime=now))
            if renewed is not None:
                with self._lock:
                    self._member = renewed
                return True
        # First round, or our Lease changed under us: read it and decide.
        status, found = self._call("GET", self._path(self.member_name))
        if status == 404:
            created = self._create(
                self._lease(
                    self.member_name,
                    "member",
                    {ANNOTATION_IDENTITY: self.identity},
                    {
                        "holderIdentity": self.holder,
                        "leaseDurationSeconds": self.duration,
                        "acquireTime": now,
                        "renewTime": now,
                        "leaseTransitions": 0,
                    },
                )
            )
            with self._lock:
                self._member = created
            return created is not None
        if status != 200:
            raise LeaseApiError(f"reading lease {self.member_name}: {status} {found.get('message', '')}")
        spec = found.get("spec") or {}
        other = spec.get("holderIdentity")
        if other and other != self.holder:
            version = str(found["metadata"].get("resourceVersion", ""))
            if self._observed.unchanged_for(self.member_name, version) < int(spec.get("leaseDurationSeconds") or 0):
                return False  # another live process uses this identity
        taken = dict(spec)
        if other != self.holder:
            taken.update(
                holderIdentity=self.holder, acquireTime=now, leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1
            )
        taken.update(renewTime=now, leaseDurationSeconds=self.duration)
        renewed = self._put({**found, "spec": taken})
        with self._lock:
            self._member = renewed
        return renewed is not None

    def _member_holders(self) -> list[tuple[str, str]]:
        """(identity, holder) of the live members, as this replica observes them."""
        self.next_expiry = None  # unknown until the members are read
        items = self._list("member")
        live: list[tuple[str, str]] = []
        names = []
        expiries = []
        for item in items:
            meta, spec = item.get("metadata") or {}, item.get("spec") or {}
            name, holder = str(meta.get("name", "")), str(spec.get("holderIdentity") or "")
            identity = str((meta.get("annotations") or {}).get(ANNOTATION_IDENTITY, ""))
            names.append(name)
            duration = int(spec.get("leaseDurationSeconds") or self.duration)
            quiet = self._observed.unchanged_for(name, str(meta.get("resourceVersion", "")))
            if holder == self.holder or (holder and identity and quiet < duration):
                live.append((identity, holder))
                if holder != self.holder:
                    expiries.append(duration - quiet)
            elif quiet > FORGET_AFTER * duration:
                self._forget(name, str(meta.get("resourceVersion", "")))
        self._observed.keep(names)
        self.next_expiry = min(expiries) if expiries else None
        with self._lock:
            self._live_holders = {holder for _, holder in live}
        return live

    def _forget(self, name: str, version: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"resourceVersion": version}}
        with contextlib.suppress(LeaseApiError):  # someone else's round will
            self._call("DELETE", self._path(name), body)

    def members(self) -> list[str]:
        return sorted({identity for identity, _ in self._member_holders()})

    # --- repo leases ------------------------------------------------------------------------------

    def _repo_name(self, repo: str) -> str:
        return f"{self.prefix}-r-{_hash(repo)}"

    def acquire(self, repos: Collection[str]) -> dict[str, int]:
        wanted = set(repos)
        if not wanted:
            return {}
        # Repo leases first, members second: a holder seen in the first list joined before the
        # second was read, so "not a live member" means gone, never "joined a moment ago".
        found: dict[str, dict[str, Any]] = {}
        for item in self._list("repo"):
            repo = (item["metadata"].get("annotations") or {}).get(ANNOTATION_REPO)
            if repo in wanted:
                found[repo] = item
        self._member_holders()
        with self._lock:
            live = set(self._live_holders)
        now = _micro_time(self.clock())
        got: dict[str, int] = {}
        for repo in sorted(wanted):
            current = found.get(repo)
            if current is None:
                made = self._create(
                    self._lease(
                        self._repo_name(repo),
                        "repo",
                        {ANNOTATION_REPO: repo},
                        {
                            "holderIdentity": self.holder,
                            "leaseDurationSeconds": self.duration,
                            "acquireTime": now,
                            "renewTime": now,
                            "leaseTransitions": 0,
                        },
                    )
                )
                if made is not None:
                    got[repo] = 0
                    with self._lock:
                        self._repo_leases[repo] = made
                continue
            spec = current.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            if holder and holder != self.holder and holder in live:
                continue
            generation = int(spec.get("leaseTransitions") or 0) + 1
            taken = _with_spec(
                current,
                holderIdentity=self.holder,
                acquireTime=now,
                renewTime=now,
                leaseTransitions=generation,
                leaseDurationSeconds=self.duration,
            )
            written = self._put(taken)
            if written is not None:
                got[repo] = generation
                with self._lock:
                    self._repo_leases[repo] = written
        return got

    def release(self, leases: Mapping[str, int]) -> None:
        failed = []
        for repo, generation in sorted(leases.items()):
            with self._lock:
                known = self._repo_leases.pop(repo, None)
            for _ in range(2):
                if known is None:
                    status, known = self._call("GET", self._path(self._repo_name(repo)))
                    if status != 200:
                        break
                spec = known.get("spec") or {}
                if spec.get("holderIdentity") != self.holder or int(spec.get("leaseTransitions") or 0) != generation:
                    break  # not ours any more
                if self._put(_with_spec(known, holderIdentity=None)) is not None:
                    break
                known = None  # changed since we wrote it: read it again
            else:
                failed.append(repo)
        if failed:
            raise LeaseApiError(f"could not give back {', '.join(failed)}")

    def leave(self, leases: Mapping[str, int]) -> None:
        try:
            self.release(leases)
        finally:
            with self._lock:
                member, self._member = self._member, None
            version = str(((member or {}).get("metadata") or {}).get("resourceVersion", ""))
            body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
            if version:
                body["preconditions"] = {"resourceVersion": version}
            self._call("DELETE", self._path(self.member_name), body)

    def check(self, repo: str, generation: int, session: Any | None) -> bool:
        # The shard's local test is the fence here: the others wait `lease_seconds` of *their*
        # observation after our last renewal before taking a repo, and we stop acting before that.
        return True

    def holders(self) -> dict[str, str | None]:
        """repo -> identity of its live holder (None: free), for tests and benchmarks."""
        live = dict((h, i) for i, h in self._member_holders())
        out: dict[str, str | None] = {}
        for item in self._list("repo"):
            repo = (item["metadata"].get("annotations") or {}).get(ANNOTATION_REPO)
            holder = (item.get("spec") or {}).get("holderIdentity") or ""
            if repo:
                out[repo] = live.get(holder)
        return out


def _with_spec(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    spec = dict(obj.get("spec") or {})
    spec.update(changes)
    return {**obj, "spec": spec}


__all__ = ["ANNOTATION_IDENTITY", "ANNOTATION_REPO", "LABEL_LEASE", "KubernetesLeases", "LeaseApiError"]
