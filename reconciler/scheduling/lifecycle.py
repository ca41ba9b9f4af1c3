"""Groups of Polyaxon run statuses that scheduling decisions depend on.

Kept here, next to the only code that reads them, until a shared lifecycle module exists; the
names are Polyaxon 2.18's (reconciler.statuses_spec).
"""

from __future__ import annotations

from reconciler.statuses_spec import STATUSES

SUCCEEDED = "succeeded"
FAILED = "failed"
UPSTREAM_FAILED = "upstream_failed"
STOPPED = "stopped"
SKIPPED = "skipped"
DONE = "done"
RETRYING = "retrying"
RUNNING = "running"

# Polyaxon's "done" values: a run in one of these never changes again.
FINAL = frozenset({SUCCEEDED, FAILED, UPSTREAM_FAILED, STOPPED, SKIPPED, DONE})
# Everything else counts as active: a queued or retrying run occupies its slot like a running one.
ACTIVE = frozenset(STATUSES) - FINAL
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
