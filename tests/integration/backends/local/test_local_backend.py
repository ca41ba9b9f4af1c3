"""The local backend against real processes: lifecycle, termination, stop, services, logs, outputs."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from reconciler.backends.base import PermanentBackendError, TransientBackendError
from reconciler.backends.local import LocalBackend
from reconciler.backends.local.procs import ProcessId, identify
from tests.integration.backends.local.local_backend_helpers import (
    Backends,
    final_status,
    make_request,
    statuses,
    wait_until,
)


def child_of(backend: LocalBackend, name: str, attempt: int) -> ProcessId:
    path = backend.run_dir(name) / "attempts" / f"{attempt}.child.json"
    data = wait_until(lambda: json.loads(path.read_text()) if path.exists() else None, what=f"{path}")
    return ProcessId(data["pid"], data["start"])


def test_success(backend: LocalBackend) -> None:
    backend.submit(make_request("ok", "echo hello"))
    assert final_status(backend, "ok") == "succeeded"
    history = backend.history("ok")
    assert [h["status"] for h in history][:2] == ["created", "starting"]
    assert history[-1]["status"] == "succeeded"
    assert "image busybox:1.36 not pulled; running the command on this machine" in history[0]["message"]
    assert "not pulled" in history[1]["message"]
    owned = {o.run: o for o in backend.list_owned()}
    assert owned["ok"].status == "succeeded"
    assert owned["ok"].spec_hash == "hash1"
    assert owned["ok"].annotations["reconciler.polyaxon.io/op-key"] == "examples:ok.yaml#ok"


def test_failure_with_exit_code(backend: LocalBackend) -> None:
    backend.submit(make_request("bad", "echo oops >&2; exit 7"))
    assert final_status(backend, "bad") == "failed"
    last = backend.history("bad")[-1]
    assert last["reason"] == "error"
    assert "exit code 7" in last["message"]


def test_command_not_found_fails_with_127(backend: LocalBackend) -> None:
    container = {"command": ["definitely-not-a-command-xyz"]}
    backend.submit(make_request("nocmd", container=container))
    assert final_status(backend, "nocmd") == "failed"
    assert "exit code 127" in backend.history("nocmd")[-1]["message"]
    assert "cannot start" in backend.logs("nocmd")


def test_running_is_reported_for_a_process_that_lasts(backend: LocalBackend, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    backend.submit(make_request("lasting", f"while [ ! -f {flag} ]; do sleep 0.05; done"))
    wait_until(lambda: backend.status("lasting") == "running", what="running")
    flag.touch()
    assert final_status(backend, "lasting") == "succeeded"
    assert statuses(backend, "lasting") == ["created", "starting", "running", "succeeded"]


def test_timeout_fails_the_run_and_kills_the_process(backend: LocalBackend) -> None:
    started = time.monotonic()
    backend.submit(make_request("slow", "sleep 60", termination={"timeout": 1}))
    child = child_of(backend, "slow", 1)
    assert final_status(backend, "slow") == "failed"
    elapsed = time.monotonic() - started
    last = backend.history("slow")[-1]
    assert last["reason"] == "timeout"
    assert 1.0 <= elapsed < 10
    assert not child.alive()


def test_max_retries_with_retrying_transitions(backend: LocalBackend, tmp_path: Path) -> None:
    counter = tmp_path / "attempts.txt"
    backend.submit(
        make_request("flaky", f"echo try >> {counter}; echo attempt-output; exit 3", termination={"maxRetries": 2})
    )
    assert final_status(backend, "flaky") == "failed"
    assert counter.read_text().count("try") == 3
    assert statuses(backend, "flaky").count("retrying") == 2
    assert [s for s in statuses(backend, "flaky") if s in ("starting", "retrying", "failed")] == [
        "starting",
        "retrying",
        "starting",
        "retrying",
        "starting",
        "failed",
    ]
    assert "after 3 attempts" in backend.history("flaky")[-1]["message"]
    assert backend.logs("flaky").count("attempt-output") == 3


def test_retry_that_succeeds(backend: LocalBackend, tmp_path: Path) -> None:
    marker = tmp_path / "seen"
    script = f"if [ -f {marker} ]; then exit 0; fi; touch {marker}; exit 1"
    backend.submit(make_request("second-time", script, termination={"maxRetries": 3}))
    assert final_status(backend, "second-time") == "succeeded"
    assert statuses(backend, "second-time").count("retrying") == 1


def test_stop_kills_the_whole_process_group(backend: LocalBackend) -> None:
    script = 'sleep 1000 & echo $! > "$POLYAXON_RUN_ARTIFACTS_PATH/grandchild.pid"; sleep 1000; wait'
    backend.submit(make_request("long", script))
    wait_until(lambda: backend.status("long") == "running", what="running")
    pid_file = backend.run_dir("long") / "artifacts" / "grandchild.pid"
    grandchild = identify(int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="pid")))
    child = child_of(backend, "long", 1)
    assert grandchild.alive() and child.alive()
    backend.stop("long")
    assert final_status(backend, "long") == "stopped"
    assert statuses(backend, "long")[-2:] == ["stopping", "stopped"]
    wait_until(lambda: not grandchild.alive() and not child.alive(), what="group to be gone")


def test_stop_escalates_to_sigkill_after_the_grace_period(backends: Backends) -> None:
    backend = backends.open(stop_grace=0.5)
    # The shell and its sleep ignore SIGTERM (an ignored signal stays ignored across exec).
    backend.submit(make_request("stubborn", "trap '' TERM; sleep 1000"))
    wait_until(lambda: backend.status("stubborn") == "running", what="running")
    child = child_of(backend, "stubborn", 1)
    started = time.monotonic()
    backend.stop("stubborn")
    assert final_status(backend, "stubborn") == "stopped"
    assert time.monotonic() - started >= 0.5
    assert "SIGKILL" in backend.history("stubborn")[-1]["message"]
    assert not child.alive()


def test_service_is_restarted_after_its_process_is_killed(backend: LocalBackend, tmp_path: Path) -> None:
    backend.submit(make_request("svc", f"echo up >> {tmp_path / 'starts'}; exec sleep 1000", kind="service"))
    wait_until(lambda: backend.status("svc") == "running", what="running")
    first = child_of(backend, "svc", 1)
    os.kill(first.pid, signal.SIGKILL)
    second = child_of(backend, "svc", 2)
    wait_until(lambda: backend.status("svc") == "running" and second.alive(), what="restarted service")
    assert second.pid != first.pid
    restart = next(h for h in backend.history("svc") if h["status"] == "retrying")
    assert restart["reason"] == "restarting" and "SIGKILL" in restart["message"]
    assert (tmp_path / "starts").read_text().count("up") == 2
    backend.stop("svc")
    assert final_status(backend, "svc") == "stopped"
    wait_until(lambda: not second.alive(), what="service gone")


def test_apply_restarts_a_service_with_the_new_spec(backend: LocalBackend, tmp_path: Path) -> None:
    out = tmp_path / "version"
    first = make_request("web", f"echo v1 > {out}; exec sleep 1000", kind="service", spec_hash="v1")
    backend.apply(first)
    wait_until(lambda: out.exists() and out.read_text().strip() == "v1", what="v1 running")
    backend.apply(first)  # same spec: nothing happens
    assert not (backend.run_dir("web") / "attempts" / "2.wrapper.json").exists()
    second = make_request("web", f"echo v2 > {out}; exec sleep 1000", kind="service", spec_hash="v2")
    backend.apply(second)
    wait_until(lambda: out.read_text().strip() == "v2", what="v2 running")
    assert backend.status("web") == "running"
    assert any(h["reason"] == "spec_updated" for h in backend.history("web"))
    assert "starting" not in statuses(backend, "web")[2:]
    assert backend.list_owned()[0].spec_hash == "v2"


def test_submit_is_idempotent(backend: LocalBackend, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    request = make_request("once", f"echo run >> {counter}")
    ref = backend.submit(request)
    assert backend.submit(request) == ref
    assert final_status(backend, "once") == "succeeded"
    assert backend.submit(request) == ref
    assert counter.read_text().count("run") == 1
    assert len(backend.list_owned()) == 1


def test_logs_capture_stdout_and_stderr_with_tail(backend: LocalBackend) -> None:
    backend.submit(make_request("talk", "echo one; echo two >&2; echo three"))
    final_status(backend, "talk")
    assert backend.logs("talk") == "one\ntwo\nthree\n"
    assert backend.logs("talk", tail=1) == "three\n"
    with pytest.raises(PermanentBackendError):
        backend.logs("nope")


def test_outputs_are_read_back(backend: LocalBackend) -> None:
    script = (
        """echo '{"name": "loss", "value": 0.5}' >> "$POLYAXON_RUN_OUTPUTS_PATH";"""
        """echo '{"name": "loss", "value": 0.25}' >> "$POLYAXON_RUN_OUTPUTS_PATH";"""
        """echo '{"accuracy": 0.9}' >> "$POLYAXON_RUN_OUTPUTS_PATH" """
    )
    backend.submit(make_request("metrics", script))
    assert final_status(backend, "metrics") == "succeeded"
    assert backend.outputs("metrics") == {"loss": 0.25, "accuracy": 0.9}


def test_params_env_and_working_dir_are_applied(backend: LocalBackend, tmp_path: Path) -> None:
    workdir = tmp_path / "code"
    workdir.mkdir()
    container = {
        "image": "python:3.11",
        "command": ["/bin/sh", "-c"],
        "args": ['echo "lr={{ lr }} {{ params.epochs.as_arg }} run={{ globals.name }} env=$GREETING pwd=$(pwd)"'],
        "env": [{"name": "GREETING", "value": "hi-{{ lr }}"}],
        "workingDir": str(workdir),
    }
    request = make_request(
        "params",
        container=container,
        inputs=[{"name": "lr", "type": "float"}, {"name": "epochs", "type": "int", "value": 2, "isOptional": True}],
        params={"lr": {"value": 0.01}},
    )
    backend.submit(request)
    assert final_status(backend, "params") == "succeeded"
    assert backend.logs("params") == f"lr=0.01 --epochs=2 run=params env=hi-0.01 pwd={workdir}\n"


def test_missing_working_dir_falls_back_to_the_runs_home_and_says_so(backend: LocalBackend) -> None:
    container = {"command": ["pwd"], "workingDir": "/no/such/dir/here"}
    backend.submit(make_request("wd", container=container))
    assert final_status(backend, "wd") == "succeeded"
    assert backend.logs("wd").strip() == str(backend.run_dir("wd") / "home")
    assert "/no/such/dir/here does not exist" in backend.history("wd")[1]["message"]


@pytest.mark.parametrize("kind", ["tfjob", "pytorchjob", "raycluster", "daskcluster", "sparkjob", "dag"])
def test_unsupported_kinds_are_unschedulable_and_leave_nothing(backend: LocalBackend, kind: str) -> None:
    with pytest.raises(PermanentBackendError) as error:
        backend.submit(make_request(f"k-{kind}", kind=kind))
    assert error.value.status == "unschedulable"
    assert backend.list_owned() == []
    assert not (backend.state_dir / f"k-{kind}").exists()


def test_observe_yields_transitions_in_order_then_returns(backend: LocalBackend) -> None:
    backend.submit(make_request("watched", "true"))
    seen: list[str] = []
    deadline = time.monotonic() + 20
    while "succeeded" not in seen and time.monotonic() < deadline:
        seen += [t.status for t in backend.observe(timeout=0.5) if t.run == "watched"]
    assert seen[:2] == ["created", "starting"] and seen[-1] == "succeeded"
    started = time.monotonic()
    assert list(backend.observe(timeout=0.2)) == []
    assert time.monotonic() - started >= 0.2


def test_delete_kills_and_removes(backend: LocalBackend) -> None:
    backend.submit(make_request("gone", "sleep 1000"))
    child = child_of(backend, "gone", 1)
    run_dir = backend.run_dir("gone")
    backend.delete("gone")
    assert not run_dir.exists()
    assert not child.alive()
    assert backend.list_owned() == []
    backend.delete("gone")  # deleting what is gone is fine
    backend.stop("gone")  # and so is stopping it


def test_one_backend_per_state_dir(backends: Backends) -> None:
    backends.open()
    with pytest.raises(TransientBackendError, match="in use"):
        LocalBackend(backends.state_dir)
