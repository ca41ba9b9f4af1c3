"""The on-disk record of local runs: one directory per run, the only state the backend keeps.

Everything needed to re-attach after a daemon restart is here, written atomically (write to a
temporary file, then rename), so a crash leaves either the old or the new version of a file:

    <state dir>/<run name>/
        request.json     the RunRequest (op, kind, spec hash, effective spec, params)
        launch.json      the process to start for every attempt (LaunchSpec)
        state.json       the supervision state (lifecycle.RunState)
        events.jsonl     every status transition emitted, in order
        stdout.log       the process's stdout and stderr, all attempts
        outputs.jsonl    outputs the run reports ($POLYAXON_RUN_OUTPUTS_PATH)
        outputs.offset   how far the backend has read outputs.jsonl while the run ran
        home/            the run's HOME and default working dir
        artifacts/       globals.artifacts_path; artifacts/outputs is globals.run_outputs_path

When runs switch to another user (`users`), that user owns home/, artifacts/ and outputs.jsonl
and nothing else here.
        attempts/<n>.wrapper.json  pid + start time of attempt n's wrapper (written by the backend)
        attempts/<n>.child.json    pid + start time of the command (written by the wrapper)
        attempts/<n>.exit.json     exit code and time (written by the wrapper)
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from reconciler.backends.local.launch import LaunchSpec, RunPaths
from reconciler.backends.local.lifecycle import Exit, RunState, Terminate
from reconciler.backends.local.outputs import Mark
from reconciler.backends.local.procs import ProcessId
from reconciler.backends.logfiles import LOG_CHUNK as LOG_CHUNK
from reconciler.backends.logfiles import TAIL_MAX_BYTES as TAIL_MAX_BYTES
from reconciler.backends.logfiles import read_chunks as read_chunks  # where the CLI finds them
from reconciler.backends.logfiles import read_slice as read_slice
from reconciler.backends.logfiles import read_tail as read_tail
from reconciler.model import Cause, OpKey, RunRequest, StatusTransition

# Run names are DNS labels (model.run_name); anything else could escape the state directory.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")


def safe_name(name: str) -> bool:
    return bool(_SAFE_NAME.match(name)) and ".." not in name


def write_json(path: Path, data: Any) -> None:
    # A temporary name of our own: the wrapper writes some of the same files (wrapper.json) at
    # the same moment, and two writers sharing one temporary file lose each other's rename.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def request_to_json(run: RunRequest) -> dict[str, Any]:
    return {
        "name": run.name,
        "op": str(run.op),
        "kind": run.kind,
        "spec_hash": run.spec_hash,
        "effective": run.effective,
        "cause": str(run.cause),
        "cause_id": run.cause_id,
        "commit": run.commit,
        "namespace": run.namespace,
        "params": run.params,
        "project": run.project,
    }


def request_from_json(data: dict[str, Any]) -> RunRequest:
    return RunRequest(
        name=data["name"],
        op=OpKey.parse(data["op"]),
        kind=data["kind"],
        spec_hash=data["spec_hash"],
        effective=data["effective"],
        cause=Cause(data["cause"]),
        cause_id=data["cause_id"],
        commit=data["commit"],
        namespace=data.get("namespace", "default"),
        params=data.get("params") or {},
        project=data.get("project") or "",
    )


def state_to_json(state: RunState) -> dict[str, Any]:
    data = asdict(state)
    data["terminate"] = str(state.terminate) if state.terminate is not None else None
    return data


def state_from_json(data: dict[str, Any]) -> RunState:
    known = {f.name for f in fields(RunState)}
    values = {k: v for k, v in data.items() if k in known}
    if values.get("terminate") is not None:
        values["terminate"] = Terminate(values["terminate"])
    return RunState(**values)


class RunDir:
    """One run's directory, with typed accessors for its files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name

    @property
    def paths(self) -> RunPaths:
        return RunPaths(run_dir=self.path, outputs_file=self.outputs_file)

    @property
    def log_file(self) -> Path:
        return self.path / "stdout.log"

    @property
    def outputs_file(self) -> Path:
        return self.path / "outputs.jsonl"

    @property
    def events_file(self) -> Path:
        return self.path / "events.jsonl"

    def outputs_mark(self) -> Mark:
        data = read_json(self.path / "outputs.offset")
        if isinstance(data, dict) and isinstance(data.get("offset"), int) and isinstance(data.get("head"), str):
            return Mark(max(0, data["offset"]), data["head"])
        return Mark()

    def write_outputs_mark(self, mark: Mark) -> None:
        write_json(self.path / "outputs.offset", {"offset": mark.offset, "head": mark.head})

    def attempt_prefix(self, attempt: int) -> Path:
        return self.path / "attempts" / str(attempt)

    def exists(self) -> bool:
        return (self.path / "request.json").is_file()

    def create(self, run: RunRequest) -> None:
        """Make the directories and record the request (the last write marks the run as existing)."""
        (self.path / "attempts").mkdir(parents=True, exist_ok=True)
        (self.path / "artifacts" / "outputs").mkdir(parents=True, exist_ok=True)
        (self.path / "home").mkdir(exist_ok=True)
        write_json(self.path / "request.json", request_to_json(run))

    def request(self) -> RunRequest:
        return request_from_json(read_json(self.path / "request.json"))

    def write_request(self, run: RunRequest) -> None:
        write_json(self.path / "request.json", request_to_json(run))

    def launch(self) -> LaunchSpec | None:
        data = read_json(self.path / "launch.json")
        return LaunchSpec.from_json(data) if isinstance(data, dict) else None

    def write_launch(self, spec: LaunchSpec) -> None:
        write_json(self.path / "launch.json", spec.to_json())

    def state(self) -> RunState | None:
        data = read_json(self.path / "state.json")
        return state_from_json(data) if isinstance(data, dict) else None

    def write_state(self, state: RunState) -> None:
        write_json(self.path / "state.json", state_to_json(state))

    def append_event(self, transition: StatusTransition) -> None:
        line = json.dumps(
            {
                "status": transition.status,
                "at": transition.at.isoformat(),
                "reason": transition.reason,
                "message": transition.message,
            }
        )
        with self.events_file.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def events(self) -> list[dict[str, Any]]:
        try:
            lines = self.events_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def write_wrapper(self, attempt: int, process: ProcessId) -> None:
        write_json(Path(f"{self.attempt_prefix(attempt)}.wrapper.json"), {"pid": process.pid, "start": process.start})

    def wrapper(self, attempt: int) -> ProcessId | None:
        return _process(read_json(Path(f"{self.attempt_prefix(attempt)}.wrapper.json")))

    def child(self, attempt: int) -> ProcessId | None:
        return _process(read_json(Path(f"{self.attempt_prefix(attempt)}.child.json")))

    def write_exit(self, attempt: int, exit_: Exit) -> None:
        write_json(
            Path(f"{self.attempt_prefix(attempt)}.exit.json"),
            {"code": exit_.code, "at": exit_.at, "detail": exit_.detail},
        )

    def exit(self, attempt: int) -> Exit | None:
        data = read_json(Path(f"{self.attempt_prefix(attempt)}.exit.json"))
        if not isinstance(data, dict):
            return None
        return Exit(code=data.get("code"), at=data.get("at"), detail=str(data.get("detail") or ""))


def _process(data: Any) -> ProcessId | None:
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
        return None
    return ProcessId(pid=data["pid"], start=data.get("start"))
