"""Process identity across daemon restarts: a pid plus the process's start time.

A pid alone is not an identity: after the process ends the number is reused, and a restarted
daemon that trusted it could signal or "re-attach" to a stranger. The start time tells the
original from a newcomer (`wrapper.start_time`, shared with the wrapper so both agree).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.backends.local.wrapper import start_time

_PROC = Path("/proc")


def _is_zombie(pid: int) -> bool:
    """Ended but not reaped yet: dead for our purposes, though /proc still lists it."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
        return False
    return text[text.rindex(")") + 2 :].split()[0] in ("Z", "X")


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start: str | None

    def alive(self) -> bool:
        """Running (not a zombie) and still the same process as when it was recorded."""
        current = start_time(self.pid)
        if current is None or (self.start is not None and current != self.start):
            return False
        return not _is_zombie(self.pid)

    def signal_group(self, signum: int) -> bool:
        """Signal the process group this process leads, if it is still this process."""
        if not self.alive():
            return False
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True


def identify(pid: int) -> ProcessId:
    return ProcessId(pid, start_time(pid))
