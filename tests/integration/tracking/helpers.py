"""Small builders shared by the tracking tests."""

from __future__ import annotations

import datetime as dt

from reconciler.model import Cause
from reconciler.tracking import CreatedRun, Store


def commit_run(store: Store, op_key: str, sha: str, now: dt.datetime, spec_hash: str = "h") -> CreatedRun:
    """The run a commit causes, named as the planner would (op + hash + cause)."""
    slug = op_key.replace(":", "-").replace("#", "-").replace(".", "-").replace("/", "-")
    return store.create_run(
        op_key=op_key,
        cause=Cause.COMMIT,
        cause_id=sha,
        name=f"{slug}-{spec_hash[:8]}-{sha[:8]}",
        spec_hash=spec_hash,
        backend="local",
        commit_sha=sha,
        now=now,
    )
