"""The shared vocabulary of the reconciler: plain, immutable values that every layer passes around.

Pure layers (compile, plan, render, scheduling) produce and consume these; adapters (backends,
tracking, forge) translate them to and from the outside world. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from reconciler.errors import Located

MANAGED_BY = "polyaxon-reconciler"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_OP = "reconciler.polyaxon.io/op"
LABEL_RUN = "reconciler.polyaxon.io/run"
LABEL_SPEC_HASH = "reconciler.polyaxon.io/spec-hash"
# The daemon (its tracking database's identity) that created the object: another daemon's objects
# in the same namespace are never adopted, stopped or pruned. Absent on objects of older releases.
LABEL_INSTANCE = "reconciler.polyaxon.io/instance"
ANNOTATION_REPO = "reconciler.polyaxon.io/repo"
ANNOTATION_PATH = "reconciler.polyaxon.io/path"
ANNOTATION_COMMIT = "reconciler.polyaxon.io/commit"
ANNOTATION_OP_KEY = "reconciler.polyaxon.io/op-key"
# The reason of the history row (a note: the run keeps its status) that records a long-running
# run's objects re-applied after someone edited or deleted them in the cluster.
DRIFT_CORRECTED = "DriftCorrected"


@dataclass(frozen=True, order=True)
class OpKey:
    """`<repo>:<path in repo>#<operation name>`: stable across commits (design.md §3)."""

    repo: str
    path: str
    name: str

    def __str__(self) -> str:
        return f"{self.repo}:{self.path}#{self.name}"

    @classmethod
    def parse(cls, text: str) -> OpKey:
        repo, _, rest = text.partition(":")
        path, _, name = rest.rpartition("#")
        if not repo or not path or not name:
            raise ValueError(f"not an op key: {text!r} (expected repo:path#name)")
        return cls(repo, path, name)

    @property
    def slug(self) -> str:
        """A DNS-1123 label fragment for object names: the op name, lowercased and cleaned."""
        return dns_label(self.name, 40)


class Mode(StrEnum):
    """How an operation's desired state is realised (design.md §4)."""

    ONE_SHOT = "one-shot"  # one run per spec hash
    SCHEDULED = "scheduled"  # a registered schedule
    SUBSCRIBED = "subscribed"  # runs on events of other operations
    LONG_RUNNING = "long-running"  # kept running, converged to spec


class Cause(StrEnum):
    COMMIT = "commit"
    SCHEDULE = "schedule"
    EVENT = "event"
    MANUAL = "manual"
    PREVIEW = "preview"
    RETRY = "retry"
    DAG = "dag"
    MATRIX = "matrix"
    HOOK = "hook"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# Fields that change nothing about what runs (design.md §3).
COSMETIC_FIELDS = ("description", "tags")


def spec_hash(effective: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the operation as written, cosmetic fields excluded."""
    cleaned = {k: v for k, v in effective.items() if k not in COSMETIC_FIELDS}
    return hashlib.sha256(canonical_json(cleaned).encode()).hexdigest()


_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def dns_label(text: str, limit: int = 63) -> str:
    label = _NOT_DNS.sub("-", text.lower()).strip("-")
    return label[:limit].strip("-") or "op"


def run_name(op: OpKey, spec_hash_hex: str, cause_id: str) -> str:
    """Deterministic: the same op, spec and cause always give the same name (design.md §3).

    The last part hashes the whole op key with the cause, so a repo and its fork (same commits),
    or two files declaring an op of the same name, never share a run name."""
    cause = hashlib.sha256(f"{op}\0{cause_id}".encode()).hexdigest()[:8]
    return f"{op.slug}-{spec_hash_hex[:8]}-{cause}"


@dataclass(frozen=True)
class DesiredOp:
    """One operation as Git wants it at a commit."""

    key: OpKey
    kind: str  # run kind: job, service, dag, tfjob, ...
    mode: Mode
    spec_hash: str
    effective: dict[str, Any]  # the compiled operation (camelCase, as written)
    commit: str
    schedule: dict[str, Any] | None = None
    events: tuple[dict[str, Any], ...] = ()
    preview: bool = False


@dataclass(frozen=True)
class InvalidFile:
    path: str
    errors: tuple[Located, ...]


@dataclass(frozen=True)
class DesiredState:
    repo: str
    commit: str
    ops: dict[OpKey, DesiredOp] = field(default_factory=dict)
    invalid: dict[str, InvalidFile] = field(default_factory=dict)  # path -> errors
    # Ops of invalid files, kept from the last good state (safety rule 1).
    kept: frozenset[OpKey] = frozenset()

    @property
    def fully_valid(self) -> bool:
        return not self.invalid


@dataclass(frozen=True)
class RunRequest:
    """Everything a backend needs to start one run; built by the planner, rendered by backends."""

    name: str
    op: OpKey
    kind: str
    spec_hash: str
    effective: dict[str, Any]
    cause: Cause
    cause_id: str
    commit: str
    namespace: str = "default"
    params: dict[str, Any] = field(default_factory=dict)
    project: str = ""  # Polyaxon project (repo config `project`); empty: the repo name

    @property
    def project_name(self) -> str:
        return self.project or self.op.repo

    def labels(self) -> dict[str, str]:
        return {
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_OP: self.op.slug,
            LABEL_RUN: self.name,
            LABEL_SPEC_HASH: self.spec_hash[:63],
        }

    def annotations(self) -> dict[str, str]:
        return {
            ANNOTATION_REPO: self.op.repo,
            ANNOTATION_PATH: self.op.path,
            ANNOTATION_COMMIT: self.commit,
            ANNOTATION_OP_KEY: str(self.op),
        }


@dataclass(frozen=True)
class LogSlice:
    """A piece of a run's log, as following it reads it: bytes from an offset, the log's size
    then, and whether the run is done (so nothing more will come)."""

    data: bytes
    size: int
    done: bool


@dataclass(frozen=True)
class RunReport:
    """Metric values (name, step or None, value) and outputs a run reported while it ran, as a
    backend saw them (the local backend reads the run's outputs file as it grows)."""

    run: str
    metrics: tuple[tuple[str, int | None, float], ...]
    outputs: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class StatusTransition:
    """A run moved to `status` (one of Polyaxon's 20) at `at`, observed by a backend.

    `note`: not a move but something to record in the run's history while it stays where it is
    (reason `DriftCorrected`: its objects were edited or deleted and re-applied)."""

    run: str
    status: str
    at: datetime
    reason: str = ""
    message: str = ""
    note: bool = False


@dataclass(frozen=True)
class ObservedObject:
    """Something a backend found that carries our ownership labels."""

    run: str
    op_slug: str
    kind: str
    spec_hash: str
    status: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
