"""Daemon restarts: a new backend over the same state dir re-attaches, never starts twice, and
learns how runs ended while it was down (from the wrapper's record, or `unknown`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from reconciler.backends.local.procs import ProcessId
from tests.integration.backends.local.local_backend_helpers import (
    Backends,
    final_status,
    make_request,
    statuses,
    wait_until,
)


def waiting_script(flag: Path, counter: Path, code: int = 0) -> str:
    return f"echo start >> {counter}; while [ ! -f {flag} ]; do sleep 0.05; done; exit {code}"


def test_restart_reattaches_to_a_running_process_without_starting_it_again(backends: Backends, tmp_path: Path) -> None:
    flag, counter = tmp_path / "go", tmp_path / "count"
    first = backends.open()
    request = make_request("survivor", waiting_script(flag, counter))
    first.submit(request)
    wait_until(lambda: first.status("survivor") == "running", what="running")
    first.close()

    second = backends.open()
    assert second.status("survivor") == "running"
    second.submit(request)  # the planner re-submitting after a restart adopts
    flag.touch()
    assert final_status(second, "survivor") == "succeeded"
    assert counter.read_text().count("start") == 1
    assert statuses(second, "survivor") == ["created", "starting", "running", "succeeded"]


def test_exit_while_the_daemon_was_down_is_read_from_the_wrappers_record(backends: Backends, tmp_path: Path) -> None:
    flag, counter = tmp_path / "go", tmp_path / "count"
    first = backends.open()
    first.submit(make_request("ended-meanwhile", waiting_script(flag, counter, code=5)))
    wait_until(lambda: first.status("ended-meanwhile") == "running", what="running")
    run_dir = first.run_dir("ended-meanwhile")
    first.close()

    flag.touch()
    exit_file = run_dir / "attempts" / "1.exit.json"
    wait_until(exit_file.exists, what="the wrapper to record the exit")

    second = backends.open()
    assert final_status(second, "ended-meanwhile") == "failed"
    assert "exit code 5" in second.history("ended-meanwhile")[-1]["message"]
    assert counter.read_text().count("start") == 1


def test_retry_due_while_down_happens_after_restart_once(backends: Backends, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    first = backends.open(backoff_base=0.2, backoff_cap=0.2)
    script = f"echo start >> {counter}; [ $(grep -c start {counter}) -ge 2 ]"
    first.submit(make_request("retry-later", script, termination={"maxRetries": 1}))
    wait_until(lambda: first.status("retry-later") == "retrying", what="retrying")
    first.close()
    second = backends.open()
    assert final_status(second, "retry-later") == "succeeded"
    assert counter.read_text().count("start") == 2


def test_killed_while_down_without_a_record_is_unknown(backends: Backends, tmp_path: Path) -> None:
    flag, counter = tmp_path / "go", tmp_path / "count"
    first = backends.open()
    first.submit(make_request("vanished", waiting_script(flag, counter)))
    wait_until(lambda: first.status("vanished") == "running", what="running")
    run_dir = first.run_dir("vanished")
    first.close()

    wrapper = ProcessId(**json.loads((run_dir / "attempts" / "1.wrapper.json").read_text()))
    child = ProcessId(**json.loads((run_dir / "attempts" / "1.child.json").read_text()))
    os.kill(wrapper.pid, signal.SIGKILL)  # nobody left to record the exit code
    os.killpg(child.pid, signal.SIGKILL)
    wait_until(lambda: not wrapper.alive() and not child.alive(), what="processes gone")

    second = backends.open()
    assert final_status(second, "vanished") == "unknown"
    last = second.history("vanished")[-1]
    assert last["reason"] == "exit_unknown"
    assert "daemon was not running" in last["message"]
    assert counter.read_text().count("start") == 1


def test_service_that_died_while_down_is_restarted(backends: Backends, tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    first = backends.open()
    first.submit(make_request("svc-down", f"echo up >> {starts}; exec sleep 1000", kind="service"))
    wait_until(lambda: first.status("svc-down") == "running", what="running")
    run_dir = first.run_dir("svc-down")
    first.close()
    child = ProcessId(**json.loads((run_dir / "attempts" / "1.child.json").read_text()))
    os.kill(child.pid, signal.SIGKILL)
    wait_until(lambda: (run_dir / "attempts" / "1.exit.json").exists(), what="exit recorded")

    second = backends.open()
    wait_until(lambda: (run_dir / "attempts" / "2.child.json").exists(), what="second attempt")
    wait_until(lambda: second.status("svc-down") == "running", what="running again")
    assert starts.read_text().count("up") == 2


DAEMON = """
import sys
from pathlib import Path
from tests.integration.backends.local.local_backend_helpers import make_request, wait_until
from reconciler.backends.local import LocalBackend

backend = LocalBackend(Path(sys.argv[1]), interval=0.05)
backend.submit(make_request("crash-survivor", sys.argv[2]))
wait_until(lambda: (backend.run_dir("crash-survivor") / "attempts" / "1.child.json").exists())
print("running", flush=True)
sys.stdin.read()
"""


def test_daemon_killed_outright_then_a_new_one_adopts_and_reads_the_exit(backends: Backends, tmp_path: Path) -> None:
    flag, counter = tmp_path / "go", tmp_path / "count"
    repo_root = Path(__file__).resolve().parents[4]
    daemon = subprocess.Popen(
        [sys.executable, "-c", DAEMON, str(backends.state_dir), waiting_script(flag, counter, code=4)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")])},
    )
    try:
        assert daemon.stdout is not None
        assert daemon.stdout.readline().strip() == "running"
    finally:
        daemon.kill()  # SIGKILL: no close(), no cleanup, as in a crash
        daemon.wait(timeout=10)

    backend = backends.open()
    assert backend.status("crash-survivor") == "running"
    flag.touch()
    assert final_status(backend, "crash-survivor") == "failed"
    assert "exit code 4" in backend.history("crash-survivor")[-1]["message"]
    assert counter.read_text().count("start") == 1


def test_an_attempt_whose_wrapper_never_started_is_launched_again(backends: Backends, tmp_path: Path) -> None:
    """The crash window between "decided to launch" (state saved) and "wrapper running": no
    record and no process means nothing ran, so a restart launches the attempt instead of
    writing the run off as `unknown`."""
    flag, counter = tmp_path / "go", tmp_path / "count"
    first = backends.open()
    first.submit(make_request("never-started", waiting_script(flag, counter)))
    wait_until(lambda: first.status("never-started") == "running", what="running")
    run_dir = first.run_dir("never-started")
    first.close()
    # Make the run look exactly like the crash window: its processes gone, no record of them.
    for name in ("1.child.json", "1.wrapper.json"):
        pid = json.loads((run_dir / "attempts" / name).read_text())["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL) if name.startswith("1.child") else os.kill(pid, signal.SIGKILL)
        wait_until(lambda p=pid: not ProcessId(p, None).alive(), what=f"{name} process gone")
    for leftover in (run_dir / "attempts").glob("1.*"):
        leftover.unlink()

    second = backends.open()
    wait_until(lambda: counter.read_text().count("start") == 2, what="the attempt launched again")
    flag.touch()
    assert final_status(second, "never-started") == "succeeded"
    assert "unknown" not in statuses(second, "never-started")
