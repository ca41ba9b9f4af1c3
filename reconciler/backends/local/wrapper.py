"""The tiny parent of every local run's process: it records how the process ended.

The daemon may crash or restart while a run's process keeps going. Because this wrapper (not the
daemon) is the process's parent, and it outlives the daemon in its own session, the exit code is
written to a file even when nobody watches, and a restarted daemon reads the truth instead of
guessing `unknown`.

    python -I .../reconciler/backends/local/wrapper.py <attempt file prefix> [--as UID:GID] -- argv...

The command runs in its own process group (so stop signals reach its children too). SIGTERM,
SIGINT and SIGHUP sent to the wrapper are forwarded to that group; the wrapper itself keeps
waiting, so it still records the exit. When the command ends, whatever it left behind in its
group is killed, as a container's processes end with the container. With `--as`, the command
(not the wrapper, which must write its records and signal the group) runs as that user and group
with no supplementary groups. Standard library only, so
it starts fast and is run by path in isolated mode (`-I`): it needs neither the installed
package nor the user's PYTHON* variables, which stay untouched for the command itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

_PROC = Path("/proc")


def start_time(pid: int) -> str | None:
    """An opaque token that differs between two processes that had the same pid.

    Field 22 of `/proc/<pid>/stat` (start time in clock ticks since boot); where there is no
    /proc (macOS), `ps -o lstart=`. Lives here, not in `procs`, because this file must run alone.
    """
    if _PROC.is_dir():
        try:
            text = (_PROC / str(pid) / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        # The command name is in parentheses and may itself contain spaces or parentheses.
        fields = text[text.rindex(")") + 2 :].split()
        return fields[19] if len(fields) > 19 else None
    try:
        out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # the backend may write the same file
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    prefix, rest = argv[0] if argv else "", argv[1:]
    switch: tuple[int, int] | None = None
    if len(rest) >= 2 and rest[0] == "--as":
        uid, _, gid = rest[1].partition(":")
        switch = (int(uid), int(gid))
        rest = rest[2:]
    if len(rest) < 2 or rest[0] != "--":
        print("usage: wrapper.py <attempt prefix> [--as UID:GID] -- command...", file=sys.stderr)
        return 2
    command = rest[1:]
    # Say who we are before anything else: a daemon that died between starting us and writing
    # this itself can then tell "never started" (no record, no process) from "started".
    _write_json(Path(prefix + ".wrapper.json"), {"pid": os.getpid(), "start": start_time(os.getpid())})
    child_file = Path(prefix + ".child.json")
    exit_file = Path(prefix + ".exit.json")
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child is None:
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    for forwarded in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # A Python-level handler (unlike SIG_IGN) is reset to the default by exec, so the
        # command still dies of these signals.
        signal.signal(forwarded, forward)

    try:
        if switch is None:
            child = subprocess.Popen(command, process_group=0)
        else:
            child = subprocess.Popen(command, process_group=0, user=switch[0], group=switch[1], extra_groups=[])
    except OSError as error:
        code = 127 if isinstance(error, FileNotFoundError) else 126
        print(f"[reconciler] cannot start {command[0]!r}: {error.strerror or error}", file=sys.stderr, flush=True)
        _write_json(exit_file, {"code": code, "at": time.time(), "detail": f"cannot start {command[0]}: {error}"})
        return code
    _write_json(child_file, {"pid": child.pid, "start": start_time(child.pid)})
    for signum in pending:
        forward(signum, None)
    if hasattr(os, "waitid"):
        # Wait without reaping, so the group id cannot be reused before the leftovers are killed.
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    else:  # macOS before Python 3.13: reap first; the group id is reused only if nothing is left
        child.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    returncode = child.wait()
    detail = ""
    if returncode < 0:
        try:
            detail = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            detail = f"killed by signal {-returncode}"
    _write_json(exit_file, {"code": returncode, "at": time.time(), "detail": detail})
    return returncode if returncode >= 0 else 128 - returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
