"""One cache per resource kind, kept current by a watch: list once, then only watch.

The informer pattern of client-go, reduced to what the backend needs: a LIST fills the cache and
gives a resourceVersion; a WATCH from there (with bookmarks, so the version keeps moving even
when our objects do not) is resumed from the last version when the server closes it. Only a
410 Gone (the version was compacted away) costs another LIST, and the differences to the cache
are replayed as events, so no deletion is missed while the watch was down.

The cache holds every object of ours of its kind (a Job per run until it is deleted), so it keeps
what the backend reads and not the field-by-field sets of `metadata.managedFields`: each entry
keeps its manager, operation, time, subresource and the top-level keys of its field set (`f:spec`,
`f:status`), which is what drift detection asks (who last wrote the spec, and when). The sets were
about half of a cached Job's memory (`slim`).

A kind whose API is not served (operator not installed) is parked, not polled: `wake()` makes
it look again, which the backend does when a run of that kind is submitted.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from reconciler.backends.kubernetes.client import ApiError, Client
from reconciler.backends.kubernetes.resources import Resource
from reconciler.backoff import Backoff
from reconciler.model import LABEL_MANAGED_BY, MANAGED_BY

log = logging.getLogger(__name__)

SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
# Handler(event type, object, previous object or None); types: ADDED, MODIFIED, DELETED.
Handler = Callable[[str, dict[str, Any], "dict[str, Any] | None"], None]


class Gone(Exception):
    """The watch's resourceVersion is too old (410): relist."""


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` as the cache keeps it (changed in place): each managedFields entry's field set cut
    to its top-level keys (`{"f:spec": {}, ...}`); everything else as the API server sent it."""
    meta = obj.get("metadata")
    entries = meta.get("managedFields") if isinstance(meta, dict) else None
    if isinstance(entries, list):
        for entry in entries:
            fields = entry.get("fieldsV1") if isinstance(entry, dict) else None
            if isinstance(fields, dict):
                entry["fieldsV1"] = {key: {} for key in fields}
    return obj


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Informer:
    def __init__(
        self,
        client: Client,
        resource: Resource,
        namespace: str | None,
        handler: Handler,
        *,
        watch_seconds: int = 300,
        backoff_max: float = 30.0,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.handler = handler
        self.watch_seconds = watch_seconds
        self.backoff_max = backoff_max
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.resource_version = ""
        self.synced = threading.Event()
        self.missing = False  # the API is not served (CRD not installed)
        self.lists = 0  # LIST calls made; more than one means a 410 or a reconnect after an error
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._response: list[Any] = []
        self._thread = threading.Thread(target=self._run, name=f"informer-{resource.kind}", daemon=True)

    # --- public -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.interrupt()
        self._thread.join(timeout=10)

    def interrupt(self) -> None:
        """End the current watch; the loop resumes it from the last resourceVersion."""
        for response in list(self._response):
            with contextlib.suppress(Exception):
                response.shutdown()

    def wake(self) -> None:
        """Look for a missing API again (a run of this kind is about to be submitted)."""
        self._wake.set()

    def objects(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.store.values())

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self.store.get((namespace, name))

    def by_label(self, label: str, value: str) -> list[dict[str, Any]]:
        with self._lock:
            objects = list(self.store.values())
        return [o for o in objects if ((o.get("metadata") or {}).get("labels") or {}).get(label) == value]

    def upsert(self, obj: dict[str, Any]) -> None:
        """Record what a write returned, so a read right after the write sees it."""
        obj = slim(obj)
        with self._lock:
            current = self.store.get(_key(obj))
            if current is None or _rv(current) < _rv(obj):
                self.store[_key(obj)] = obj

    # --- loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff(initial=0.5, cap=self.backoff_max)
        failures = 0
        while not self._stop.is_set():
            try:
                if not self.resource_version:
                    self._list()
                self._watch()
                failures = 0
            except Gone:
                log.info("%s: watch expired (410), relisting", self.resource.kind)
                self.resource_version = ""
            except ApiError as e:
                if e.status == 410:
                    self.resource_version = ""
                    continue
                if e.status == 404:
                    # The API went away (CRD deleted) or never was: look again by listing.
                    if self.resource_version:
                        self.resource_version = ""
                        continue
                    self._park()
                    continue
                failures += 1
                delay = backoff.delay(failures)
                log.warning("%s: %s; retrying in %.1fs", self.resource.kind, e, delay)
                self._stop.wait(delay)
            except Exception as e:
                if self._stop.is_set():
                    return
                failures += 1
                delay = backoff.delay(failures)
                log.warning("%s: watch broke (%s); resuming in %.1fs", self.resource.kind, e, delay)
                self._stop.wait(delay)

    def _park(self) -> None:
        self.missing = True
        self.synced.set()
        self._wake.wait()
        self._wake.clear()

    def _list(self) -> None:
        data = self.client.request(
            "GET", self.resource.collection(self.namespace), verb="LIST", query={"labelSelector": SELECTOR}
        )
        self.lists += 1
        self.missing = False
        fresh: dict[tuple[str, str], dict[str, Any]] = {}
        for item in data.get("items") or []:
            item.setdefault("apiVersion", self.resource.api_version)
            item.setdefault("kind", self.resource.kind)
            fresh[_key(item)] = slim(item)
        with self._lock:
            old = self.store
            self.store = fresh
        self.resource_version = str((data.get("metadata") or {}).get("resourceVersion") or "")
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self.handler("ADDED", obj, None)
            elif _rv(before) != _rv(obj):
                self.handler("MODIFIED", obj, before)
        for key, obj in old.items():
            if key not in fresh:
                self.handler("DELETED", obj, obj)
        self.synced.set()

    def _watch(self) -> None:
        query = {
            "labelSelector": SELECTOR,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": True,
            # Spread the reconnects of the informers so they do not all come at once.
            "timeoutSeconds": self.watch_seconds + random.randint(0, max(1, self.watch_seconds // 10)),
        }
        for event in self.client.watch(self.resource.collection(self.namespace), query, self._response):
            if self._stop.is_set():
                return
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise ApiError(int(obj.get("code") or 500), obj)
            version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            if kind == "BOOKMARK":
                self.resource_version = version or self.resource_version
                continue
            obj.setdefault("apiVersion", self.resource.api_version)
            obj.setdefault("kind", self.resource.kind)
            slim(obj)
            with self._lock:
                before = self.store.get(_key(obj))
                stale = kind != "DELETED" and before is not None and _rv(before) > _rv(obj)
                if kind == "DELETED":
                    self.store.pop(_key(obj), None)
                elif not stale:
                    self.store[_key(obj)] = obj
            self.resource_version = version or self.resource_version
            if not stale:
                self.handler(str(kind), obj, before)


def _rv(obj: dict[str, Any]) -> int:
    # resourceVersions are opaque in principle, and etcd revisions (integers) in practice; the
    # order is only used to skip stale copies, so a non-integer counts as newest.
    value = str((obj.get("metadata") or {}).get("resourceVersion") or "0")
    return int(value) if value.isdigit() else 1 << 62
