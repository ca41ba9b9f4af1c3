"""The groups of run statuses scheduling decisions read, as plain strings.

Derived from the shared lifecycle (`reconciler.statuses`), because the pure scheduling functions
take statuses as the strings stored in the DB and reported by backends.
"""

from __future__ import annotations

from reconciler.statuses import DONE as _DONE
from reconciler.statuses import RUN_STATUSES

SUCCEEDED = "succeeded"
FAILED = "failed"
UPSTREAM_FAILED = "upstream_failed"
STOPPED = "stopped"
SKIPPED = "skipped"
DONE = "done"
RETRYING = "retrying"
RUNNING = "running"

# Polyaxon's "done" values (and the `done` trigger): a run in one of these never changes again.
FINAL = frozenset(s.value for s in _DONE) | {DONE}
# Everything else counts as active: a queued or retrying run occupies its slot like a running one.
ACTIVE = frozenset(s.value for s in RUN_STATUSES) - FINAL
# Trigger policies and early stopping count these as failures.
FAILURES = frozenset({FAILED, UPSTREAM_FAILED})


def is_final(status: str | None) -> bool:
    return status in FINAL


def is_active(status: str | None) -> bool:
    return status in ACTIVE


def event_matches(kind: str, status: str) -> bool:
    """Does a `run_status_<x>` event kind match a transition to `status`?

    `run_status_done` matches every final status, as a hook's `done` trigger does; the others
    match their own status only.
    """
    if not kind.startswith("run_status_"):
        return False
    wanted = kind.removeprefix("run_status_")
    if wanted == DONE:
        return status in FINAL
    return wanted == status
