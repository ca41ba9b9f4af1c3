"""The Kubernetes backend: runs become objects (rendered, then created or server-side applied),
and watches on those objects become status transitions.

- submit: create, or adopt what a crash left behind (same name, our run label); never touch an
  object that is not ours.
- apply: server-side apply with field manager `polyaxon-reconciler`; a conflict with another
  manager is reported (`ConflictError`), not forced, unless `force_conflicts`.
- observe: events from one informer per kind (`informer.py`), read with `statuses.py`. At steady
  state the only calls are the watches themselves.
- drift: a long-running object (service, raycluster, daskcluster) edited by someone else (through
  the object or its scale subresource) or deleted is re-applied when the self-heal policy says so
  (a `DriftCorrected` note in the run's history), else reported (the run goes to `warning`).
- a kind whose CRD is missing makes that run `unschedulable`, naming the operator to install.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient

from reconciler.backends.base import PermanentBackendError, TransientBackendError
from reconciler.backends.kubernetes.client import APPLY, MERGE, ApiError, Client
from reconciler.backends.kubernetes.informer import Informer
from reconciler.backends.kubernetes.logs import PodLogs
from reconciler.backends.kubernetes.resources import (
    BY_KEY,
    LONG_RUNNING_KINDS,
    PRIMARY_KINDS,
    RESOURCES,
    Resource,
    resource_for,
)
from reconciler.backends.kubernetes.statuses import FINAL, STOP_ANNOTATION, Mapped, status_of, status_of_deleted
from reconciler.model import (
    ANNOTATION_OP_KEY,
    DRIFT_CORRECTED,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_OP,
    LABEL_RUN,
    LABEL_SPEC_HASH,
    MANAGED_BY,
    ObservedObject,
    RunRequest,
)
from reconciler.model import StatusTransition as Transition
from reconciler.render import RenderError, RenderOptions, render

log = logging.getLogger(__name__)

FIELD_MANAGER = MANAGED_BY
# Seconds the readiness call (GET /readyz of the API server) may take: a probe must answer fast.
READY_TIMEOUT = 3.0


class ConflictError(PermanentBackendError):
    """Server-side apply found fields owned by another manager; the run is left as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status="warning")


@dataclass(frozen=True)
class Drift:
    run: str
    kind: str
    namespace: str
    name: str
    change: str  # "deleted" or "edited"
    healed: bool
    detail: str = ""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = _meta(obj).get("labels") or {}
    return labels


def _conflicts(error: ApiError) -> str:
    causes = (error.body.get("details") or {}).get("causes") or []
    found = "; ".join(str(c.get("message")) for c in causes if c.get("message"))
    return found or error.message


class KubernetesBackend:
    name = "kubernetes"
    # Runs the applier submits at once (`Applier.submit_concurrency`): a submit is mostly an API
    # round trip, which the client's connection pool serves in parallel (it is sized for these
    # and the informers' watches); more than this gained nothing against a 2-core API server.
    submit_concurrency = 16

    def __init__(
        self,
        api_client: ApiClient,
        *,
        namespace: str | Sequence[str] | None = None,
        render_options: RenderOptions | None = None,
        force_conflicts: bool = False,
        self_heal: bool | Callable[[RunRequest], bool] = True,
        clock: Callable[[], datetime] = _utc_now,
        watch_seconds: int = 300,
        sync_timeout: float = 30.0,
        start: bool = True,
        instance: str = "",
        request_timeout: float = 30.0,
        log_dir: Path | None = None,
    ) -> None:
        """`namespace`: the namespace runs go to, or several (each watched on its own, so rights
        per namespace are enough); None watches every namespace (needs cluster-wide rights).

        `instance` is the daemon's identity: objects are labelled with it, and objects another
        daemon labelled are neither listed, adopted, stopped nor pruned (objects without the label,
        made by releases before it, count as this daemon's). `request_timeout` bounds each API
        call, its retries included. `log_dir` keeps each run's logs (all its pods') once it ends
        (`logs.PodLogs`)."""
        if namespace is None:
            self.namespaces: tuple[str, ...] | None = None
        else:
            self.namespaces = (namespace,) if isinstance(namespace, str) else tuple(dict.fromkeys(namespace))
        # A connection per watch (one per kind and namespace), per concurrent submit, and a few more.
        watches = len(RESOURCES) * len(self.namespaces or (None,))
        self.client = Client(api_client, timeout=request_timeout, pool_size=watches + self.submit_concurrency + 4)
        self.pod_logs = PodLogs(self.client, log_dir)
        self._archiving: queue.Queue[tuple[str, list[str]] | None] = queue.Queue()
        self._archiver: threading.Thread | None = None
        self.instance = instance
        self.render_options = dataclasses.replace(render_options or RenderOptions(), instance=instance)
        # Each run's report token and the daemon's URL (set by the daemon's wiring), in every main
        # container: computed at render time, never kept in the run's record.
        self.run_env: Callable[[str], Mapping[str, str]] | None = None
        self.force_conflicts = force_conflicts
        self.self_heal = self_heal
        self.clock = clock
        self._queue: queue.Queue[tuple[str, dict[str, Any], dict[str, Any] | None] | Transition] = queue.Queue()
        self._last: dict[str, str] = {}
        self._long_running: dict[str, RunRequest] = {}
        self._removing: set[str] = set()  # runs being stopped or deleted by us
        self._healed: set[tuple[str, str, str]] = set()
        self._drifts: list[Drift] = []
        self._lock = threading.Lock()
        # One informer per kind and watched namespace (one per kind when watching them all).
        self._informers: dict[tuple[str | None, tuple[str, str]], Informer] = {
            (ns, r.key): Informer(self.client, r, ns, self._on_event, watch_seconds=watch_seconds)
            for ns in (self.namespaces or (None,))
            for r in RESOURCES
        }
        if start:
            self.start(sync_timeout)

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def namespace(self) -> str | None:
        """The first namespace runs go to (None: all)."""
        return self.namespaces[0] if self.namespaces else None

    def informer(self, key: tuple[str, str], namespace: str | None = None) -> Informer:
        """The cache of one kind in `namespace` (the first watched one by default)."""
        if self.namespaces is None:
            return self._informers[(None, key)]
        return self._informers[(namespace or self.namespaces[0], key)]

    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def _of_kind(self, resource: Resource) -> list[Informer]:
        return [i for (_, key), i in self._informers.items() if key == resource.key]

    def start(self, sync_timeout: float = 30.0) -> None:
        if self.pod_logs.directory is not None and self._archiver is None:
            self._archiver = threading.Thread(target=self._archive_ended, name="k8s-logs", daemon=True)
            self._archiver.start()
        for informer in self.informers():
            informer.start()
        deadline = time.monotonic() + sync_timeout
        for informer in self.informers():
            if not informer.synced.wait(max(0.0, deadline - time.monotonic())):
                raise TransientBackendError(f"the {informer.resource.kind} cache did not sync in {sync_timeout:.0f}s")

    def close(self) -> None:
        for informer in self.informers():
            informer.stop()
        if self._archiver is not None:
            self._archiving.put(None)
            self._archiver.join(timeout=10)
            self._archiver = None

    def _mine(self, obj: dict[str, Any]) -> bool:
        owner = _labels(obj).get(LABEL_INSTANCE)
        return not owner or not self.instance or owner == self.instance

    def _on_event(self, kind: str, obj: dict[str, Any], before: dict[str, Any] | None) -> None:
        if self._mine(obj):
            self._queue.put((kind, obj, before))

    # --- writes -------------------------------------------------------------------------------

    def _run_env(self, run_name: str) -> dict[str, str]:
        return dict(self.run_env(run_name)) if self.run_env is not None else {}

    def _render(self, run: RunRequest) -> list[dict[str, Any]]:
        if self.namespaces is not None and run.namespace not in self.namespaces:
            managed = ", ".join(repr(n) for n in self.namespaces)
            raise PermanentBackendError(
                f"run {run.name} is for namespace {run.namespace!r}; this backend manages {managed} only"
            )
        try:
            manifests = render(run, self.render_options, self._run_env(run.name))
        except RenderError as e:
            raise PermanentBackendError(str(e), status="failed") from e
        for manifest in manifests:
            self._ensure_api(resource_for(manifest))
        return manifests

    def _ensure_api(self, resource: Resource) -> None:
        informers = self._of_kind(resource)
        if not any(i.missing for i in informers):
            return
        path = f"/apis/{resource.api_version}"
        try:
            served = self.client.request("GET", path, verb="DISCOVERY")
        except ApiError as e:
            if e.status != 404:
                raise TransientBackendError(f"discovery of {resource.api_version}: {e}") from e
            served = {}
        if not any(r.get("name") == resource.plural for r in served.get("resources") or []):
            raise PermanentBackendError(
                f"{resource.kind} ({resource.api_version}) is not served by this cluster: install {resource.operator}",
                status="unschedulable",
            )
        for informer in informers:
            informer.wake()

    def _ref(self, manifests: list[dict[str, Any]]) -> str:
        primary = next((m for m in manifests if m["kind"] in PRIMARY_KINDS), manifests[0])
        return f"{primary['metadata']['namespace']}/{primary['kind']}/{primary['metadata']['name']}"

    def _fail(self, error: ApiError, what: str, resource: Resource | None = None) -> Exception:
        if error.status == 404 and resource is not None:
            for informer in self._of_kind(resource):
                informer.wake()
            install = f": install {resource.operator}" if resource.operator else ""
            return PermanentBackendError(
                f"{what}: {resource.kind} ({resource.api_version}) is not served by this cluster{install}",
                status="unschedulable",
            )
        if error.status in (400, 403, 422):
            return PermanentBackendError(f"{what}: {error.message}", status="failed")
        return TransientBackendError(f"{what}: {error}")

    def submit(self, run: RunRequest) -> str:
        manifests = self._render(run)
        made: list[tuple[Resource, dict[str, Any]]] = []  # created by this call
        try:
            self._create_all(run, manifests, made)
        except PermanentBackendError:
            # Refused for good (a foreign object holds one of the names): what this call created
            # goes, so a failed run leaves nothing running and its retry starts clean.
            for resource, obj in made:
                meta = _meta(obj)
                with contextlib.suppress(ApiError, TransientBackendError):
                    self._delete(resource.item(meta["namespace"], meta["name"]))
            raise
        if any(m["kind"] in LONG_RUNNING_KINDS for m in manifests):
            with self._lock:
                self._long_running[run.name] = run
        return self._ref(manifests)

    def _create_all(
        self, run: RunRequest, manifests: list[dict[str, Any]], made: list[tuple[Resource, dict[str, Any]]]
    ) -> None:
        for manifest in manifests:
            resource = resource_for(manifest)
            meta = manifest["metadata"]
            what = f"{manifest['kind']} {meta['namespace']}/{meta['name']}"
            informer = self.informer(resource.key, meta["namespace"])
            cached = informer.get(meta["namespace"], meta["name"])
            if cached is not None and _labels(cached).get(LABEL_RUN) == run.name and self._mine(cached):
                continue  # already there: adopt
            if cached is not None and self._op_shared(cached, manifest, run):
                informer.upsert(self._take_over(resource, manifest, what))
                continue
            try:
                created = self.client.request(
                    "POST",
                    resource.collection(meta["namespace"]),
                    verb="CREATE",
                    query={"fieldManager": FIELD_MANAGER},
                    body=manifest,
                )
            except ApiError as e:
                if e.status != 409:
                    raise self._fail(e, f"creating {what}", resource) from e
                created = self._adopt(resource, manifest, run, what)
            else:
                made.append((resource, created))
            informer.upsert(created)

    def _adopt(self, resource: Resource, manifest: dict[str, Any], run: RunRequest, what: str) -> dict[str, Any]:
        """A 409 on create: ours from an earlier attempt (a crash before it was recorded) is
        adopted; anything else with that name is left alone and reported."""
        meta = manifest["metadata"]
        try:
            live = self.client.request("GET", resource.item(meta["namespace"], meta["name"]), verb="GET")
        except ApiError as e:
            raise self._fail(e, f"reading {what}") from e
        labels = _labels(live)
        if self._op_shared(live, manifest, run):
            return self._take_over(resource, manifest, what)
        if labels.get(LABEL_MANAGED_BY) != MANAGED_BY or labels.get(LABEL_RUN) != run.name:
            raise PermanentBackendError(
                f"{what} already exists and is not this run's; the reconciler will not touch it"
            )
        if not self._mine(live):
            raise PermanentBackendError(
                f"{what} belongs to another reconciler (instance {labels.get(LABEL_INSTANCE)}); not touched"
            )
        return live

    def _op_shared(self, live: dict[str, Any], manifest: dict[str, Any], run: RunRequest) -> bool:
        """`live` is the op's Service (named after the op, see `render.service`) made by an
        earlier run of the same op by this daemon: the new run takes it over."""
        return (
            manifest["kind"] == "Service"
            and _labels(live).get(LABEL_MANAGED_BY) == MANAGED_BY
            and self._mine(live)
            and (_meta(live).get("annotations") or {}).get(ANNOTATION_OP_KEY) == str(run.op)
        )

    def _take_over(self, resource: Resource, manifest: dict[str, Any], what: str) -> dict[str, Any]:
        meta = manifest["metadata"]
        try:
            taken: dict[str, Any] = self.client.request(
                "PATCH",
                resource.item(meta["namespace"], meta["name"]),
                verb="APPLY",
                query={"fieldManager": FIELD_MANAGER, "force": True},
                body=manifest,
                content_type=APPLY,
            )
        except ApiError as e:
            raise self._fail(e, f"taking over {what} for run {_labels(manifest).get(LABEL_RUN)}", resource) from e
        return taken

    def apply(self, run: RunRequest) -> str:
        manifests = self._render(run)
        self._apply(run, manifests, force=self.force_conflicts)
        with self._lock:
            self._long_running[run.name] = run
        return self._ref(manifests)

    def _apply(self, run: RunRequest, manifests: list[dict[str, Any]], *, force: bool) -> None:
        for manifest in manifests:
            resource = resource_for(manifest)
            meta = manifest["metadata"]
            what = f"{manifest['kind']} {meta['namespace']}/{meta['name']}"
            informer = self.informer(resource.key, meta["namespace"])
            live = informer.get(meta["namespace"], meta["name"])
            if live is None:
                # Not in our cache: either new, or there and not ours. Server-side apply would
                # happily take over the latter, so look first.
                try:
                    live = self.client.request("GET", resource.item(meta["namespace"], meta["name"]), verb="GET")
                except ApiError as e:
                    if e.status != 404:
                        raise self._fail(e, f"reading {what}") from e
                    live = None
            if live is not None and (_labels(live).get(LABEL_MANAGED_BY) != MANAGED_BY or not self._mine(live)):
                raise PermanentBackendError(
                    f"{what} already exists and is not managed by this reconciler; it will not be taken over"
                )
            try:
                applied = self.client.request(
                    "PATCH",
                    resource.item(meta["namespace"], meta["name"]),
                    verb="APPLY",
                    query={"fieldManager": FIELD_MANAGER, "force": force},
                    body=manifest,
                    content_type=APPLY,
                )
            except ApiError as e:
                if e.status == 409:
                    raise ConflictError(
                        f"{what}: fields are owned by another manager ({_conflicts(e)}); "
                        "not forced (set force_conflicts to take them over)"
                    ) from e
                raise self._fail(e, f"applying {what}", resource) from e
            informer.upsert(applied)

    def _objects_of(self, run_name: str) -> list[tuple[Resource, dict[str, Any]]]:
        return [
            (informer.resource, obj)
            for informer in self.informers()
            for obj in informer.by_label(LABEL_RUN, run_name)
            if self._mine(obj)
        ]

    def stop(self, run_name: str) -> None:
        objects = self._objects_of(run_name)
        self._archive_now(run_name, objects)  # before its pods go
        with self._lock:
            self._long_running.pop(run_name, None)
            self._removing.add(run_name)
        if not objects:
            self._queue.put(Transition(run_name, "stopped", self.clock(), "NotFound", "nothing to stop"))
            return
        self._queue.put(Transition(run_name, "stopping", self.clock(), "StopRequested", ""))
        for resource, obj in objects:
            meta = _meta(obj)
            path = resource.item(meta["namespace"], meta["name"])
            try:
                if obj["kind"] in PRIMARY_KINDS:
                    patch = {"metadata": {"annotations": {STOP_ANNOTATION: "true"}}}
                    self.client.request("PATCH", path, verb="PATCH", body=patch, content_type=MERGE)
                self._delete(path)
            except ApiError as e:
                if e.status != 404:
                    raise self._fail(e, f"stopping {obj['kind']} {meta['namespace']}/{meta['name']}") from e

    def _delete(self, path: str) -> None:
        try:
            self.client.request("DELETE", path, verb="DELETE", body={"propagationPolicy": "Background"})
        except ApiError as e:
            if e.status != 404:
                raise

    def delete(self, run_name: str) -> None:
        with self._lock:
            self._long_running.pop(run_name, None)
            self._removing.add(run_name)
        self.pod_logs.forget(run_name)  # the run's objects go, and what was kept of them
        for resource, obj in self._objects_of(run_name):
            meta = _meta(obj)
            try:
                self._delete(resource.item(meta["namespace"], meta["name"]))
            except ApiError as e:
                raise self._fail(e, f"deleting {obj['kind']} {meta['namespace']}/{meta['name']}") from e

    # --- reads --------------------------------------------------------------------------------

    def observe(self, timeout: float | None = None) -> Iterator[Transition]:
        while True:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                return
            if isinstance(item, Transition):
                found: list[Transition] = [item]
            else:
                found = self._process(*item)
            for transition in found:
                if transition.note:
                    yield transition
                    continue
                repeat = self._last.get(transition.run) == transition.status and transition.reason != "Drift"
                self._last[transition.run] = transition.status
                if transition.status in FINAL:
                    if not repeat:
                        self._archive_later(transition.run)
                    self._forget(transition.run)
                if not repeat:
                    yield transition

    def _forget(self, run_name: str) -> None:
        """A run that ended: what is kept about it in memory goes (bounded by what is live).

        Its last status stays until its objects are gone, so a late repeat is still dropped."""
        with self._lock:
            self._long_running.pop(run_name, None)
            if not self._objects_of(run_name):
                self._last.pop(run_name, None)
                self._removing.discard(run_name)

    def _process(self, kind: str, obj: dict[str, Any], before: dict[str, Any] | None) -> list[Transition]:
        labels = _labels(obj)
        run = labels.get(LABEL_RUN)
        if not run:
            return []
        out: list[Transition] = []
        healed = False
        if obj.get("kind") in LONG_RUNNING_KINDS:
            drift = self._drift(kind, obj)
            if drift is not None:
                healed = drift.healed
                message = f"{drift.kind} {drift.namespace}/{drift.name} was {drift.change} in the cluster"
                if healed:
                    # A history row for the run, which keeps its status: the drift is mended.
                    status, why = self._last.get(run, ""), f"{message}; re-applied"
                    out.append(Transition(run, status, self.clock(), DRIFT_CORRECTED, why, note=True))
                else:
                    out.append(Transition(run, "warning", self.clock(), "Drift", f"{message}; {drift.detail}"))
        if obj.get("kind") not in PRIMARY_KINDS or healed:
            return out
        mapped: Mapped | None
        if kind != "DELETED" and run in self._removing:
            # Stopping: only a final status (the run finished meanwhile) is still news.
            found = status_of(obj)
            if found is not None and found.status in FINAL:
                out.append(Transition(run, found.status, self.clock(), found.reason, found.message))
            return out
        if kind == "DELETED":
            mapped = status_of_deleted(obj)
            if run in self._removing and mapped.reason == "Deleted":
                mapped = Mapped("stopped", "DeletedByReconciler", "deleted by the reconciler")
            uid = str(_meta(obj).get("uid"))
            with self._lock:
                self._healed = {key for key in self._healed if key[0] != uid}
        else:
            mapped = status_of(obj)
        if mapped is not None:
            out.append(Transition(run, mapped.status, self.clock(), mapped.reason, mapped.message))
        return out

    def _foreign_edit(self, obj: dict[str, Any]) -> tuple[str, str] | None:
        """(manager, time) of a spec change by another field manager after our last apply.

        Writes through the `scale` subresource (`kubectl scale`, an autoscaler) change the spec
        too; only the `status` subresource (the controllers' and operators' reports) does not."""
        ours = ""
        foreign: tuple[str, str] | None = None
        for entry in _meta(obj).get("managedFields") or []:
            manager, at = str(entry.get("manager") or ""), str(entry.get("time") or "")
            if manager == FIELD_MANAGER:
                ours = max(ours, at)
            elif entry.get("subresource") != "status" and "f:spec" in (entry.get("fieldsV1") or {}):
                if not at:
                    # A scale entry carries no time. It exists only while its manager owns a field
                    # (our forced re-apply takes the field back and the entry goes), so it is an
                    # edit now; the generation tells one edit from the next.
                    return manager, f"generation {_meta(obj).get('generation')}"
                foreign = max(foreign or (manager, at), (manager, at), key=lambda p: p[1])
        if foreign is None or foreign[1] < ours:
            return None
        return foreign

    def _drift(self, kind: str, obj: dict[str, Any]) -> Drift | None:
        meta = _meta(obj)
        run_name = _labels(obj).get(LABEL_RUN, "")
        with self._lock:
            run = self._long_running.get(run_name)
        if run is None or run_name in self._removing:
            return None
        if kind == "DELETED":
            if STOP_ANNOTATION in (meta.get("annotations") or {}):
                return None
            change = "deleted"
        elif kind == "MODIFIED":
            edit = self._foreign_edit(obj)
            if edit is None:
                return None
            key = (str(meta.get("uid")), *edit)
            if key in self._healed:
                return None
            self._healed.add(key)
            change = f"edited (by {edit[0]})"
        else:
            return None
        heal = self.self_heal(run) if callable(self.self_heal) else self.self_heal
        detail = "self-heal is off for this run"
        healed = False
        if heal:
            try:
                self._apply(run, render(run, self.render_options, self._run_env(run.name)), force=True)
                healed, detail = True, "re-applied"
            except (PermanentBackendError, TransientBackendError, RenderError) as e:
                detail = f"re-apply failed: {e}"
        drift = Drift(
            run_name, str(obj.get("kind")), str(meta.get("namespace")), str(meta.get("name")), change, healed, detail
        )
        log.info("drift: %s", drift)
        with self._lock:
            self._drifts.append(drift)
        return drift

    def drifts(self) -> list[Drift]:
        """Drift seen since the last call (healed or not), oldest first."""
        with self._lock:
            found, self._drifts = self._drifts, []
        return found

    def list_owned(self) -> list[ObservedObject]:
        out: list[ObservedObject] = []
        for informer in self.informers():
            for obj in informer.objects():
                if not self._mine(obj):
                    continue
                labels = _labels(obj)
                mapped = status_of(obj)
                out.append(
                    ObservedObject(
                        run=labels.get(LABEL_RUN, ""),
                        op_slug=labels.get(LABEL_OP, ""),
                        kind=str(obj.get("kind")),
                        spec_hash=labels.get(LABEL_SPEC_HASH, ""),
                        status=mapped.status if mapped else None,
                        annotations=dict(_meta(obj).get("annotations") or {}),
                    )
                )
        return out

    def ready(self) -> str | None:
        """Ask the API server itself (GET /readyz, a few seconds at most): the informers' caches
        outlive a stopped or frozen server, so they cannot say whether it answers."""
        try:
            self.client.request("GET", "/readyz", verb="READY", timeout=READY_TIMEOUT, retries=1, quiet=True)
        except ApiError as e:
            return f"the API server {self.client.server} is not ready: {e}"
        except TransientBackendError as e:
            return f"the API server {self.client.server} does not answer: {e}"
        return None

    def missing_apis(self) -> list[Resource]:
        return list({i.resource.key: i.resource for i in self.informers() if i.missing}.values())

    # --- logs (logs.PodLogs: every container of every pod, archived when the run ends) ------------

    def _namespaces(self, objects: list[tuple[Resource, dict[str, Any]]]) -> list[str]:
        return sorted({_meta(o)["namespace"] for _, o in objects})

    def logs(self, run_name: str, tail: int | None = None) -> str:
        try:
            return self.pod_logs.text(run_name, self._namespaces(self._objects_of(run_name)), tail)
        except ApiError as e:
            raise TransientBackendError(f"logs of {run_name}: {e}") from e

    def read_log(self, run_name: str, offset: int, limit: int) -> tuple[bytes, int]:
        """Up to `limit` bytes of the run's log from `offset`, and its size now (following it)."""
        try:
            return self.pod_logs.read(run_name, self._namespaces(self._objects_of(run_name)), offset, limit)
        except ApiError as e:
            raise TransientBackendError(f"logs of {run_name}: {e}") from e

    def _archive_now(self, run_name: str, objects: list[tuple[Resource, dict[str, Any]]]) -> None:
        try:
            self.pod_logs.archive(run_name, self._namespaces(objects))
        except Exception:  # the logs are worth a try, never a failed stop
            log.warning("the logs of run %s could not be archived", run_name, exc_info=True)

    def _archive_later(self, run_name: str) -> None:
        if self._archiver is not None:
            self._archiving.put((run_name, self._namespaces(self._objects_of(run_name))))

    def _archive_ended(self) -> None:
        """Archive the logs of runs that ended, one at a time, off the observer's path."""
        while (item := self._archiving.get()) is not None:
            run_name, namespaces = item
            try:
                self.pod_logs.archive(run_name, namespaces)
            except Exception:
                log.warning("the logs of run %s could not be archived", run_name, exc_info=True)


__all__ = ["BY_KEY", "FIELD_MANAGER", "ConflictError", "Drift", "KubernetesBackend"]
