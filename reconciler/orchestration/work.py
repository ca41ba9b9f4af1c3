"""What the orchestrator hands back to the daemon: runs to submit, statuses to record, runs to stop.

The orchestrator never calls a backend. Every run in `Work.new_runs` is already in the tracking
DB (created in the same transaction that claimed its tick, consumed its transition or advanced its
parent), so the daemon only submits it; its own `store.create_run` for the same (op, cause) is a
no-op. Container runs (DAGs, matrices) never appear in `new_runs`: they are expanded into their
children here, and their derived status comes back as a `StatusUpdate`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.model import RunRequest


@dataclass(frozen=True)
class NewRun:
    """A run the daemon must submit to a backend (it is recorded already)."""

    request: RunRequest
    status: str = "created"  # or "on_schedule"
    parent: str | None = None  # the DAG or matrix run it belongs to, or the run a hook follows
    # Not handed to a backend before this instant: a tick decided ahead of its time (its run is
    # recorded early; its object is created when the tick is due, never before).
    not_before: dt.datetime | None = None
    # Recorded new by the transaction that returned it: started without being read again.
    fresh: bool = False


@dataclass(frozen=True)
class StatusUpdate:
    """A status the daemon must record with `store.transition` (then call `on_transition` with it)."""

    run: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Notice:
    """Something worth logging that changes nothing: missed ticks, a hook that cannot run, ..."""

    subject: str  # a run name or an op key
    reason: str
    message: str


@dataclass(frozen=True)
class Work:
    new_runs: tuple[NewRun, ...] = ()
    updates: tuple[StatusUpdate, ...] = ()
    stops: tuple[str, ...] = ()  # runs to stop (replace policy, early stopping, a stopped parent)
    notices: tuple[Notice, ...] = ()
    # Runs recorded for a tick still to come whose schedule changed or went away since: each is
    # taken back with its final status (skipped) unless it is being handed to the backend already.
    withdrawals: tuple[StatusUpdate, ...] = ()

    @staticmethod
    def merge(parts: Iterable[Work]) -> Work:
        """All of `parts` in order, each run to stop once: linear in their total size, so a pass
        that gathers thousands of runs (a minute's ticks, a wide matrix) collects its parts in a
        list and merges them once rather than adding them up one by one."""
        new_runs: list[NewRun] = []
        updates: list[StatusUpdate] = []
        stops: dict[str, None] = {}
        notices: list[Notice] = []
        withdrawals: list[StatusUpdate] = []
        for part in parts:
            new_runs += part.new_runs
            updates += part.updates
            stops.update(dict.fromkeys(part.stops))
            notices += part.notices
            withdrawals += part.withdrawals
        return Work(tuple(new_runs), tuple(updates), tuple(stops), tuple(notices), tuple(withdrawals))

    def __add__(self, other: Work) -> Work:
        return Work.merge((self, other))

    @property
    def empty(self) -> bool:
        return not (self.new_runs or self.updates or self.stops or self.notices or self.withdrawals)


__all__ = ["NewRun", "Notice", "StatusUpdate", "Work"]
