"""How tracked rows are shown: the JSON shapes the CLI (`--format json`) and the HTTP API share.

They are contracts users script against, so they live in one place, importable without the HTTP
server (the CLI must not pay for it).
"""

from __future__ import annotations

from typing import Any

from reconciler.tracking import Run


def run_row(run: Run, op_key: str) -> dict[str, Any]:
    """A run as `reconciler runs list --format json` and the API show it (the CLI contract)."""
    return {
        "name": run.name,
        "op": op_key,
        "kind": run.kind,
        "status": str(run.status),
        "cause": str(run.cause),
        "cause_id": run.cause_id,
        "commit": run.commit_sha,
        "parent": run.parent,
        "backend": run.backend,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


__all__ = ["run_row"]
