"""The orchestration adapter: schedules fire, subscriptions trigger, DAGs and matrices progress,
exactly once and across restarts, by applying `reconciler.scheduling`'s decisions to the tracking DB.

The daemon calls `Orchestrator` and applies the `Work` it returns; `Timer` is the APScheduler
wake-up timer whose job store lives in the tracking DB.
"""

from reconciler.orchestration.orchestrator import Orchestrator
from reconciler.orchestration.specs import Recording, RecordRun, RecordRuns, ScheduleOptions
from reconciler.orchestration.timer import Timer
from reconciler.orchestration.work import NewRun, Notice, StatusUpdate, Work

__all__ = [
    "NewRun",
    "Notice",
    "Orchestrator",
    "RecordRun",
    "RecordRuns",
    "Recording",
    "ScheduleOptions",
    "StatusUpdate",
    "Timer",
    "Work",
]
