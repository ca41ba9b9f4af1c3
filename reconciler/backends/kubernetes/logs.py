"""The logs of a run on Kubernetes: every container of every pod it has (all replicas of a
distributed job, each retry's pod), read through the API server's `pods/log`, and archived into
the daemon's data dir when the run ends so they outlive the pods.

A run's log is a file, `<dir>/<run>.log`, that only grows: each `sync` asks each pod for the lines
written since the last one it saw (`sinceTime` and `timestamps=true`; a line at or before the
last timestamp already kept is dropped) and appends them, prefixed with `<pod>/<container> | `
as soon as the run has more than one container. So a reader following the log (server-sent
events, by byte offset) never sees what it read change, and a tail costs a read from the end of a
file. A sync happens when someone reads the log of a live run, and once more when the run ends:
then the file is complete and stays, whatever becomes of the pods. Without a directory (a backend
built without one) logs are read from the pods each time and nothing is kept.

Each pod's answer is capped (`LIMIT_BYTES`), and every call has the client's timeout: a pod that
cannot answer costs one line saying so, never the reader's wait.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.backends.base import TransientBackendError
from reconciler.backends.kubernetes.client import ApiError, Client
from reconciler.backends.logfiles import read_slice, read_tail
from reconciler.model import LABEL_RUN

log = logging.getLogger(__name__)

LIMIT_BYTES = 8 * 1024 * 1024  # per container per sync


@dataclass
class _RunLog:
    seen: dict[str, str] = field(default_factory=dict)  # "<pod>/<container>" -> last timestamp kept
    lock: threading.Lock = field(default_factory=threading.Lock)
    prefixed: bool = False


def _stamp(text: str) -> tuple[str, int]:
    """An RFC 3339 time with nanoseconds (the kubelet's `timestamps=true`), made comparable:
    `...00.1Z` is before `...00.12Z`, which plain text comparison gets wrong."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    digits = "".join(ch for ch in fraction if ch.isdigit())[:9]
    return whole, int(digits.ljust(9, "0")) if digits else 0


def _safe(name: str) -> bool:
    return bool(name) and "/" not in name and not name.startswith(".") and len(name) <= 253


class PodLogs:
    def __init__(self, client: Client, directory: Path | None) -> None:
        self.client = client
        self.directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._runs: dict[str, _RunLog] = {}
        self._lock = threading.Lock()

    # --- where a run's log lives ------------------------------------------------------------------

    def _live(self, run: str) -> Path | None:
        return self.directory / f"{run}.live" if self.directory is not None and _safe(run) else None

    def archived(self, run: str) -> Path | None:
        """The run's archived log, once the run ended and its log was kept."""
        if self.directory is None or not _safe(run):
            return None
        path = self.directory / f"{run}.log"
        return path if path.is_file() else None

    def _state(self, run: str) -> _RunLog:
        with self._lock:
            state = self._runs.get(run)
            if state is None:
                state = self._runs[run] = _RunLog()
                live = self._live(run)
                if live is not None:
                    live.unlink(missing_ok=True)  # made by an earlier daemon: what it saw is unknown
            return state

    # --- reading the pods -------------------------------------------------------------------------

    def _containers(self, run: str, namespaces: Iterable[str]) -> list[tuple[str, str, str]]:
        """(namespace, pod, container) of every container of the run's pods, oldest pod first."""
        found: list[tuple[str, str, str, str]] = []
        for namespace in sorted(set(namespaces)):
            query: dict[str, Any] = {"labelSelector": f"{LABEL_RUN}={run}"}
            pods = self.client.request("GET", f"/api/v1/namespaces/{namespace}/pods", verb="LIST", query=query)
            for pod in pods.get("items") or []:
                meta = pod.get("metadata") or {}
                created = str(meta.get("creationTimestamp") or "")
                for container in (pod.get("spec") or {}).get("containers") or []:
                    found.append((created, namespace, str(meta.get("name")), str(container.get("name"))))
        return [(ns, pod, c) for _, ns, pod, c in sorted(found)]

    def _read(self, namespace: str, pod: str, container: str, since: str | None, tail: int | None) -> list[str]:
        """The container's lines (each `<timestamp> <text>`) after `since`, or its last `tail`."""
        query: dict[str, Any] = {"container": container, "timestamps": True, "limitBytes": LIMIT_BYTES}
        if since:
            query["sinceTime"] = since.split(".")[0].rstrip("Z") + "Z"  # whole seconds: lines at or after
        if tail is not None:
            query["tailLines"] = tail
        text = self.client.text(f"/api/v1/namespaces/{namespace}/pods/{pod}/log", query)
        lines = text.splitlines()
        if since:
            after = _stamp(since)
            lines = [line for line in lines if _stamp(line.split(" ", 1)[0]) > after]
        return lines

    @staticmethod
    def _text(line: str) -> str:
        stamp, _, text = line.partition(" ")
        return text if stamp[:4].isdigit() else line

    def sync(self, run: str, namespaces: Iterable[str]) -> None:
        """Append what the run's containers wrote since the last sync to its log file."""
        live = self._live(run)
        if live is None or self.archived(run) is not None:
            return
        state = self._state(run)
        with state.lock:
            containers = self._containers(run, namespaces)
            if len(containers) > 1:
                state.prefixed = True
            out: list[str] = []
            for namespace, pod, container in containers:
                key = f"{pod}/{container}"
                try:
                    lines = self._read(namespace, pod, container, state.seen.get(key), None)
                except (ApiError, TransientBackendError) as e:
                    if getattr(e, "status", None) not in (400, 404):  # not started yet, or gone
                        log.info("logs of %s/%s (run %s) unavailable: %s", namespace, pod, run, e)
                    continue
                if not lines:
                    continue
                state.seen[key] = lines[-1].split(" ", 1)[0]
                prefix = f"{key} | " if state.prefixed else ""
                out += [prefix + self._text(line) for line in lines]
            if out:
                with live.open("a", encoding="utf-8") as handle:
                    handle.write("\n".join(out) + "\n")

    def archive(self, run: str, namespaces: Iterable[str]) -> None:
        """The run ended: its log, complete, becomes `<run>.log` and stays."""
        live = self._live(run)
        if live is None or self.archived(run) is not None:
            return
        try:
            self.sync(run, namespaces)
        except (ApiError, TransientBackendError) as e:
            log.warning("archiving the logs of run %s: %s", run, e)
        live = self._live(run)
        assert live is not None
        if not live.exists():
            live.touch()
        os.replace(live, live.with_suffix(".log"))
        with self._lock:
            self._runs.pop(run, None)

    def forget(self, run: str) -> None:
        """The run is forgotten (retention): its archived log goes too."""
        for path in (self._live(run), self.archived(run)):
            if path is not None:
                path.unlink(missing_ok=True)
        with self._lock:
            self._runs.pop(run, None)

    # --- what the backend answers ------------------------------------------------------------------

    def text(self, run: str, namespaces: Iterable[str], tail: int | None) -> str:
        archived = self.archived(run)
        if archived is not None:
            return read_tail(archived, tail) if tail is not None else archived.read_text(errors="replace")
        live = self._live(run)
        if live is not None:
            self.sync(run, namespaces)
            if tail is not None:
                return read_tail(live, tail)
            return live.read_text(errors="replace") if live.exists() else ""
        # Nowhere to keep them: straight from the pods.
        containers = self._containers(run, namespaces)
        texts = []
        for namespace, pod, container in containers:
            prefix = f"{pod}/{container} | " if len(containers) > 1 else ""
            try:
                lines = self._read(namespace, pod, container, None, tail)
            except (ApiError, TransientBackendError) as e:
                texts.append(f"[logs of {pod}/{container} unavailable: {e}]")
                continue
            texts += [prefix + self._text(line) for line in lines]
        return "\n".join(texts) + ("\n" if texts else "")

    def read(self, run: str, namespaces: Iterable[str], offset: int, limit: int) -> tuple[bytes, int]:
        archived = self.archived(run)
        if archived is not None:
            return read_slice(archived, offset, limit)
        live = self._live(run)
        if live is None:
            data = self.text(run, namespaces, None).encode()
            return data[offset : offset + limit], len(data)
        self.sync(run, namespaces)
        return read_slice(live, offset, limit)


__all__ = ["LIMIT_BYTES", "PodLogs"]
