"""The local-process backend: runs jobs and services as processes on this machine.

The embedded default, so the daemon does useful work on a laptop without a cluster. Decisions
live in `lifecycle.decide` (pure); this module only observes processes, carries out the actions
and keeps the run directories (`store`) current. One lock guards all state: the supervisor
thread and API calls (submit, stop, ...) take turns, and each step is short.

Processes outlive the daemon: `close()` detaches without stopping them, and a new backend over
the same state dir re-attaches to what still runs (pid + start time), reads the exit code the
wrapper recorded for what ended meanwhile, and only says `unknown` when nothing recorded it. A
run is never started twice: a run directory that exists is adopted, never launched again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from reconciler.backends.base import PermanentBackendError, TransientBackendError
from reconciler.backends.local import lifecycle
from reconciler.backends.local.launch import BASE_ENV, DEFAULT_PATH, LaunchSpec, build_launch, check_kind
from reconciler.backends.local.lifecycle import ALIVE, BOOTING, Action, Exit, Observed, Policy, RunState
from reconciler.backends.local.outputs import read_new, read_outputs
from reconciler.backends.local.procs import ProcessId, identify
from reconciler.backends.local.store import RunDir, read_chunks, read_slice, read_tail, safe_name
from reconciler.backends.local.users import RunUser, give_to, make_reachable
from reconciler.model import ObservedObject, RunReport, RunRequest, StatusTransition

log = logging.getLogger(__name__)

# Where runs live under the daemon's data dir.
STATE_SUBDIR = "local-runs"

# What `_observe` returns when an attempt's wrapper never ran at all (see `_step`).
NEVER_STARTED = "never-started"


def _wrapper_process(prefix: Path) -> ProcessId | None:
    """A live wrapper process for this attempt, found by its command line (Linux /proc)."""
    wanted = str(prefix).encode()
    proc = Path("/proc")
    if not proc.is_dir():
        return None  # no /proc (macOS): an attempt without a record stays `unknown`, as before
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in args and any(a.endswith(b"wrapper.py") for a in args):
            found = identify(int(entry.name))
            return found if found.alive() else None
    return None


EVENT_BUFFER = 10_000

# Run by path, so the wrapper needs nothing but the interpreter (see its docstring).
WRAPPER = Path(__file__).with_name("wrapper.py")


@dataclass
class _Run:
    dir: RunDir
    request: RunRequest
    launch: LaunchSpec
    state: RunState
    policy: Policy
    popen: subprocess.Popen[bytes] | None = None  # the current attempt's wrapper, if we started it


class LocalBackend:
    """`Backend` for processes on this machine. See the module docstring and `store` for layout."""

    name = "local"

    def __init__(
        self,
        state_dir: Path,
        *,
        supervise: bool = True,
        interval: float = 0.2,
        stop_grace: float = 10.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        stable_after: float = 60.0,
        python: str = sys.executable,
        clock: Callable[[], float] = time.time,
        instance: str = "",
        legacy_dir: Path | None = None,
        run_as: RunUser | None = None,
        search_path: str | None = None,
    ) -> None:
        """`instance` is the daemon's identity: runs made before run directories were kept per
        instance, in `legacy_dir`, are claimed by the first instance that starts (an `owner` file)
        and never seen by another.
        `run_as`: the user every run's command runs as (see `users`); None: this process's.
        `search_path`: the runs' PATH (default: this process's PATH, no secret, else a standard one).
        """
        self.search_path = search_path or os.environ.get("PATH") or DEFAULT_PATH
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.instance = instance
        self._legacy_dir = legacy_dir
        self.run_as = run_as
        if run_as is not None:
            if legacy_dir is not None:  # local-runs/ and the data dir first, then local-runs/<instance>/
                make_reachable(Path(legacy_dir), run_as)
            make_reachable(self.state_dir, run_as)
        self._python = python
        self._clock = clock
        self._interval = interval
        self._policy = Policy(
            stop_grace=stop_grace, backoff_base=backoff_base, backoff_cap=backoff_cap, stable_after=stable_after
        )
        self._mutex = threading.RLock()
        self._events: queue.Queue[StatusTransition | RunReport | None] = queue.Queue(maxsize=EVENT_BUFFER)
        # What each run gets in its environment beyond its launch spec, computed at each launch and
        # never written down: its report token and the daemon's URL (set by the daemon's wiring).
        self.run_env: Callable[[str], Mapping[str, str]] | None = None
        self._runs: dict[str, _Run] = {}
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        # Two daemons supervising one state dir would both launch retries: refuse the second.
        self._lock_handle: IO[str] | None = (self.state_dir / ".lock").open("w")
        try:
            fcntl.flock(self._lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            self._lock_handle.close()
            self._lock_handle = None
            raise TransientBackendError(f"{self.state_dir} is in use by another local backend") from error
        self._reattach()
        self.poll()
        if supervise:
            self._thread = threading.Thread(target=self._supervise, name="local-backend", daemon=True)
            self._thread.start()

    @classmethod
    def in_data_dir(cls, data_dir: Path, *, instance: str = "", **options: Any) -> LocalBackend:
        """The backend the daemon uses: runs under `<data_dir>/local-runs/<instance>/`, so two
        daemons sharing a data dir (each with its own database) never see each other's runs."""
        root = Path(data_dir) / STATE_SUBDIR
        if not instance:
            return cls(root, **options)
        return cls(root / instance, instance=instance, legacy_dir=root, **options)

    # --- Backend protocol --------------------------------------------------------------------

    def submit(self, run: RunRequest) -> str:
        """Start `run` as a process. The same name again is the same run: adopted, not restarted."""
        self._check_name(run.name)
        check_kind(run.kind)
        with self._mutex:
            existing = self._runs.get(run.name)
            if existing is not None:
                return str(existing.dir.path)
            run_dir = RunDir(self.state_dir / run.name)
            if run_dir.exists():
                # Recorded on disk but not loaded (e.g. created by an earlier backend since): adopt.
                self._load(run_dir)
                return str(run_dir.path)
            launch = build_launch(run, run_dir.paths, search_path=self.search_path)
            run_dir.create(run)
            run_dir.write_launch(launch)
            state = RunState()
            run_dir.write_state(state)
            entry = _Run(run_dir, run, launch, state, self._policy_for(launch))
            self._runs[run.name] = entry
            now = self._clock()
            self._emit(entry, lifecycle.Change(lifecycle.CREATED, now, "created", launch.note()))
            self._step(entry, now)
            return str(run_dir.path)

    def apply(self, run: RunRequest) -> str:
        """Converge a service to `run`: start it if absent; restart it on a new spec hash.

        A run that is done (stopped, failed, succeeded) stays done: reviving it is a new run."""
        self._check_name(run.name)
        check_kind(run.kind)
        with self._mutex:
            entry = self._runs.get(run.name)
            if entry is None:
                return self.submit(run)
            if entry.state.status in lifecycle.FINAL or run.spec_hash == entry.request.spec_hash:
                return str(entry.dir.path)
            launch = build_launch(run, entry.dir.paths, search_path=self.search_path)
            entry.dir.write_request(run)
            entry.dir.write_launch(launch)
            entry.request, entry.launch, entry.policy = run, launch, self._policy_for(launch)
            now = self._clock()
            self._set_state(entry, lifecycle.request_replace(entry.state, now))
            self._step(entry, now)
            return str(entry.dir.path)

    def stop(self, run_name: str) -> None:
        """SIGTERM the run's process group now, SIGKILL after the grace period; stopping -> stopped.

        Stopping a run this backend does not know, or one already done, does nothing."""
        with self._mutex:
            entry = self._runs.get(run_name)
            if entry is None:
                log.info("stop: no local run named %s", run_name)
                return
            now = self._clock()
            self._set_state(entry, lifecycle.request_stop(entry.state, now))
            self._step(entry, now)

    def delete(self, run_name: str) -> None:
        """Kill whatever still runs and remove the run's directory (its logs and outputs too)."""
        if not safe_name(run_name):
            return
        with self._mutex:
            entry = self._runs.pop(run_name, None)
            run_dir = entry.dir if entry is not None else RunDir(self.state_dir / run_name)
            if not run_dir.path.exists():
                return
            attempt = entry.state.attempt if entry is not None else _last_attempt(run_dir)
            popen = entry.popen if entry is not None else None
            self._end_processes(run_dir, attempt, popen)
            shutil.rmtree(run_dir.path, ignore_errors=True)

    def observe(self, timeout: float | None = None) -> Iterator[StatusTransition | RunReport]:
        """Transitions, and what runs reported in their outputs file, in the order they happened;
        returns after `timeout` seconds without one."""
        while not self._closed.is_set():
            try:
                item = self._events.get(timeout=timeout)
            except queue.Empty:
                return
            if item is None:
                return
            yield item

    def list_owned(self) -> list[ObservedObject]:
        with self._mutex:
            return [
                ObservedObject(
                    run=name,
                    op_slug=entry.request.op.slug,
                    kind=entry.request.kind,
                    spec_hash=entry.request.spec_hash,
                    status=entry.state.status,
                    annotations=entry.request.annotations(),
                )
                for name, entry in sorted(self._runs.items())
            ]

    def ready(self) -> str | None:
        """Local processes need nothing remote: always ready."""
        return None

    def logs(self, run_name: str, tail: int | None = None) -> str:
        """stdout and stderr of every attempt, interleaved as written; `tail` keeps the last lines
        (read from the end of the file: a tail of a huge log costs the tail)."""
        run_dir = self._known_dir(run_name)
        if tail is not None:
            return read_tail(run_dir.log_file, tail)
        try:
            return run_dir.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_chunks(self, run_name: str) -> Iterator[bytes]:
        """The whole log as blocks read one at a time, for streaming it in bounded memory."""
        return read_chunks(self._known_dir(run_name).log_file)

    def read_log(self, run_name: str, offset: int, limit: int) -> tuple[bytes, int]:
        """Up to `limit` bytes of the log from `offset`, and its size now (following a log)."""
        return read_slice(self._known_dir(run_name).log_file, offset, limit)

    def close(self) -> None:
        """Stop supervising. Running processes are left running for the next backend to adopt."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._events.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    # --- beyond the protocol -----------------------------------------------------------------

    def outputs(self, run_name: str) -> dict[str, Any]:
        """What the run reported in `$POLYAXON_RUN_OUTPUTS_PATH` so far (see `outputs`)."""
        return read_outputs(self._known_dir(run_name).outputs_file)

    def status(self, run_name: str) -> str | None:
        with self._mutex:
            entry = self._runs.get(run_name)
            return entry.state.status if entry is not None else None

    def history(self, run_name: str) -> list[dict[str, Any]]:
        """Every transition this backend emitted for the run, from its `events.jsonl`."""
        return self._known_dir(run_name).events()

    def run_dir(self, run_name: str) -> Path:
        return self._known_dir(run_name).path

    def poll(self, now: float | None = None) -> list[StatusTransition]:
        """One supervision step over every live run (the supervisor thread calls this)."""
        emitted: list[StatusTransition] = []
        with self._mutex:
            for entry in list(self._runs.values()):
                if entry.state.status in lifecycle.FINAL:
                    continue
                try:
                    emitted += self._step(entry, self._clock() if now is None else now)
                except Exception:  # one run's trouble must not stop the others (safety rule 4)
                    log.exception("local run %s: supervision step failed", entry.request.name)
        return emitted

    # --- internals -------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._closed.wait(self._interval):
            self.poll()

    def _check_name(self, name: str) -> None:
        if not safe_name(name):
            raise PermanentBackendError(f"run name {name!r} cannot name a directory", status="failed")

    def _known_dir(self, run_name: str) -> RunDir:
        with self._mutex:
            entry = self._runs.get(run_name)
        if entry is not None:
            return entry.dir
        raise PermanentBackendError(f"no local run named {run_name!r}", status=None)

    def _policy_for(self, launch: LaunchSpec) -> Policy:
        return replace(
            self._policy, long_running=launch.long_running, max_retries=launch.max_retries, timeout=launch.timeout
        )

    def _reattach(self) -> None:
        paths = sorted(self.state_dir.iterdir())
        if self._legacy_dir is not None and self._legacy_dir.is_dir():
            paths += [p for p in sorted(self._legacy_dir.iterdir()) if self._claim(p)]
        for path in paths:
            run_dir = RunDir(path)
            if path.is_dir() and run_dir.exists():
                try:
                    self._load(run_dir)
                except Exception:
                    log.exception("local run directory %s could not be loaded; left alone", path)

    def _claim(self, path: Path) -> bool:
        """A run directory of an older release (no instance): this instance's if unclaimed or
        claimed by it. Claiming is atomic (O_EXCL), so two daemons starting together never share."""
        if not path.is_dir() or not RunDir(path).exists():
            return False
        owner = path / "owner"
        try:
            fd = os.open(owner, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return owner.read_text(encoding="utf-8").strip() == self.instance
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.instance)
        log.info("local run %s (made before run directories were per daemon) claimed", path.name)
        return True

    def _load(self, run_dir: RunDir) -> _Run:
        request = run_dir.request()
        launch = run_dir.launch()
        if launch is None:
            launch = build_launch(request, run_dir.paths, search_path=self.search_path)
            run_dir.write_launch(launch)
        state = run_dir.state() or RunState()
        entry = _Run(run_dir, request, launch, state, self._policy_for(launch))
        self._runs[request.name] = entry
        return entry

    def _set_state(self, entry: _Run, state: RunState) -> None:
        if state != entry.state:
            entry.state = state
            entry.dir.write_state(state)

    def _emit(self, entry: _Run, change: lifecycle.Change) -> StatusTransition:
        message = change.message
        if change.status == lifecycle.STARTING:
            message = f"{message}; {entry.launch.note()}" if message else entry.launch.note()
        transition = StatusTransition(
            run=entry.request.name,
            status=change.status,
            at=datetime.fromtimestamp(change.at, UTC),
            reason=change.reason,
            message=message,
        )
        entry.dir.append_event(transition)
        self._enqueue(transition)
        log.info("local run %s: %s (%s) %s", transition.run, transition.status, transition.reason, message)
        return transition

    def _enqueue(self, transition: StatusTransition | RunReport) -> None:
        # Nobody may be calling observe() (a caller driving poll() itself): drop the oldest
        # rather than grow without bound; every transition is in the run's events.jsonl anyway.
        while True:
            try:
                self._events.put_nowait(transition)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._events.get_nowait()

    def _tail_outputs(self, entry: _Run, ended: bool) -> None:
        """Report what the run added to its outputs file since the last look (see `outputs`)."""
        mark = entry.dir.outputs_mark()
        new_mark, found = read_new(entry.dir.outputs_file, mark, ended)
        if new_mark == mark:
            return
        if found.points or found.outputs:
            at = datetime.fromtimestamp(self._clock(), UTC)
            self._enqueue(RunReport(entry.request.name, tuple(found.points), found.outputs, at))
        entry.dir.write_outputs_mark(new_mark)

    def _step(self, entry: _Run, now: float) -> list[StatusTransition]:
        if entry.state.status not in lifecycle.FINAL and entry.state.attempt > 0:
            self._tail_outputs(entry, ended=False)
        observed = self._observe(entry)
        if observed is NEVER_STARTED:
            # The daemon stopped between deciding to launch this attempt and starting its wrapper:
            # nothing ran, so the attempt is launched again rather than written off as unknown.
            log.info("local run %s: attempt %d never started; starting it", entry.dir.name, entry.state.attempt)
            self._set_state(
                entry, replace(entry.state, status=lifecycle.RETRYING, attempt=entry.state.attempt - 1, retry_at=now)
            )
            observed = None
        step = lifecycle.decide(entry.state, entry.policy, observed, now)
        if step.state.status in lifecycle.FINAL and entry.state.status not in lifecycle.FINAL:
            # The process is gone: all it wrote is there, and is reported before its end.
            self._tail_outputs(entry, ended=True)
        self._set_state(entry, step.state)
        emitted = [self._emit(entry, change) for change in step.changes]
        for action in step.actions:
            if action == Action.LAUNCH:
                self._launch(entry)
            elif action == Action.TERMINATE:
                self._signal(entry, signal.SIGTERM)
            elif action == Action.KILL:
                self._signal(entry, signal.SIGKILL)
        if step.state.status in lifecycle.FINAL:
            entry.popen = None
        return emitted

    def _observe(self, entry: _Run) -> Observed:
        state = entry.state
        if state.status in lifecycle.FINAL or state.status in lifecycle.AWAITING_LAUNCH or state.attempt == 0:
            return None
        attempt = state.attempt
        wrapper = entry.dir.wrapper(attempt)
        child = entry.dir.child(attempt)
        if entry.popen is None and wrapper is None and entry.dir.exit(attempt) is None:
            found = _wrapper_process(entry.dir.attempt_prefix(attempt))
            if found is None:
                return NEVER_STARTED
            wrapper = found  # started, but died or was still booting before either side recorded it
            entry.dir.write_wrapper(attempt, found)
        if entry.popen is not None:
            wrapper_alive = entry.popen.poll() is None
        else:
            wrapper_alive = wrapper is not None and wrapper.alive()
        if wrapper_alive:
            return ALIVE if child is not None else BOOTING
        recorded = entry.dir.exit(attempt)
        if recorded is not None:
            return recorded
        # The wrapper is gone without a record: never leave its command running unsupervised.
        if child is not None and child.alive():
            child.signal_group(signal.SIGKILL)
        if entry.popen is not None:
            return Exit(
                None, detail=f"the wrapper process ended ({entry.popen.returncode}) without recording the exit code"
            )
        if wrapper is None:
            return Exit(None, detail=f"no record of attempt {attempt}'s process (the daemon stopped while starting it)")
        return Exit(
            None,
            detail="the process ended while the daemon was not running, and its exit code was not recorded",
        )

    def _launch(self, entry: _Run) -> None:
        attempt = entry.state.attempt
        launch = entry.launch
        prefix = entry.dir.attempt_prefix(attempt)
        switch = ["--as", f"{self.run_as.uid}:{self.run_as.gid}"] if self.run_as is not None else []
        command = [self._python, "-I", str(WRAPPER), str(prefix), *switch, "--", *launch.argv]
        paths = entry.dir.paths
        # Built, never the daemon's (launch.py); defaults for launch specs of older versions; the
        # run's report token last (computed now, never stored with the launch spec).
        env = {**BASE_ENV, "PATH": self.search_path, "HOME": str(paths.home), **launch.env}
        if self.run_env is not None:
            env.update(self.run_env(entry.request.name))
        paths.home.mkdir(exist_ok=True)
        if self.run_as is not None:
            give_to(paths, self.run_as)
        with entry.dir.log_file.open("ab") as log_file:
            if attempt > 1:
                log_file.write(f"[reconciler] attempt {attempt}\n".encode())
                log_file.flush()
            try:
                popen = subprocess.Popen(
                    command,
                    cwd=launch.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as error:
                # The wrapper itself could not start (interpreter gone, cwd vanished): that attempt failed.
                log_file.write(f"[reconciler] cannot start the process: {error}\n".encode())
                entry.dir.write_exit(attempt, Exit(126, at=self._clock(), detail=f"cannot start: {error}"))
                return
        entry.popen = popen
        entry.dir.write_wrapper(attempt, identify(popen.pid))

    def _end_processes(self, run_dir: RunDir, attempt: int, popen: subprocess.Popen[bytes] | None) -> None:
        """Kill an attempt's command group and wait for its wrapper to record that and leave."""
        wrapper = run_dir.wrapper(attempt)

        def wrapper_gone() -> bool:
            if popen is not None:
                return popen.poll() is not None
            return wrapper is None or not wrapper.alive()

        child = run_dir.child(attempt)
        if child is not None:
            child.signal_group(signal.SIGKILL)
        if wrapper is not None and not wrapper_gone():
            # Forwarded to the command's group, even if the wrapper has not written child.json yet.
            wrapper.signal_group(signal.SIGTERM)
            if not _wait_until(wrapper_gone, self._policy.stop_grace):
                child = run_dir.child(attempt)
                if child is not None:
                    child.signal_group(signal.SIGKILL)
                wrapper.signal_group(signal.SIGKILL)
                _wait_until(wrapper_gone, 10.0)

    def _signal(self, entry: _Run, signum: int) -> None:
        attempt = entry.state.attempt
        child = entry.dir.child(attempt)
        if signum == signal.SIGTERM:
            # The wrapper forwards SIGTERM to the command's group, even before it wrote child.json.
            wrapper = entry.dir.wrapper(attempt)
            if wrapper is not None and wrapper.signal_group(signum):
                return
            if child is not None:
                child.signal_group(signum)
            return
        if child is not None and child.signal_group(signum):
            return
        wrapper = entry.dir.wrapper(attempt)
        if wrapper is not None:
            wrapper.signal_group(signum)


def _last_attempt(run_dir: RunDir) -> int:
    state = run_dir.state()
    return state.attempt if state is not None else 0


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
