"""What happens next to a local run: the whole supervision policy as one pure function.

The backend only observes processes and carries out actions; every decision (which status
follows, when to retry and after how long, when a run has timed out, when a polite SIGTERM
becomes a SIGKILL, when a service is restarted) is made here from plain values and the clock
passed in, so it is tested without processes or sleeps (as APScheduler's triggers take
`start_time`).

Statuses follow Polyaxon's lifecycle: created -> starting -> running -> succeeded | failed |
stopped, with `retrying` between attempts, `stopping` after a stop request, and `unknown` when
a process ended while nobody watched and its exit code was not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from reconciler.backoff import Backoff

CREATED = "created"
STARTING = "starting"
RUNNING = "running"
RETRYING = "retrying"
STOPPING = "stopping"
STOPPED = "stopped"
SUCCEEDED = "succeeded"
FAILED = "failed"
UNKNOWN = "unknown"
UNSCHEDULABLE = "unschedulable"

# Statuses after which the local backend never acts on the run again.
FINAL = frozenset({STOPPED, SUCCEEDED, FAILED, UNKNOWN, UNSCHEDULABLE})
# Statuses in which no process exists for the current attempt and one is due.
AWAITING_LAUNCH = frozenset({CREATED, RETRYING})


class Action(StrEnum):
    LAUNCH = "launch"  # start the next attempt
    TERMINATE = "terminate"  # SIGTERM the attempt's process group
    KILL = "kill"  # SIGKILL the attempt's process group


class Terminate(StrEnum):
    """Why the backend is ending a process that has not ended by itself."""

    STOP = "stop"  # a user or the planner asked: ends in `stopped`
    TIMEOUT = "timeout"  # termination.timeout elapsed: ends in `failed`
    REPLACE = "replace"  # a long-running run's spec changed: a new attempt follows


@dataclass(frozen=True)
class Policy:
    """How a run is supervised; from the spec's `termination` and the backend's settings."""

    long_running: bool = False
    max_retries: int = 0
    timeout: float | None = None  # seconds from the first start, across attempts (activeDeadlineSeconds)
    stop_grace: float = 10.0  # seconds between SIGTERM and SIGKILL
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    # A service attempt that ran at least this long was healthy: its failure restarts the backoff.
    stable_after: float = 60.0


@dataclass(frozen=True)
class RunState:
    """Everything the policy remembers about a run; persisted as the run's `state.json`."""

    status: str = CREATED
    attempt: int = 0  # number of the current (or last) attempt; 0 before the first launch
    first_started_at: float | None = None
    attempt_started_at: float | None = None
    retry_at: float | None = None
    failures: int = 0  # consecutive failed attempts, for the backoff
    terminate: Terminate | None = None
    terminate_at: float | None = None
    term_sent: bool = False
    kill_sent: bool = False
    exit_code: int | None = None  # of the last attempt that ended, when known


@dataclass(frozen=True)
class Exit:
    """How the current attempt's process ended. `code` is None when nobody knows."""

    code: int | None
    at: float | None = None  # when it ended, if recorded
    detail: str = ""  # human words: "killed by SIGKILL", "command not found: foo", why unknown


@dataclass(frozen=True)
class Change:
    status: str
    at: float
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Step:
    state: RunState
    changes: tuple[Change, ...] = ()
    actions: tuple[Action, ...] = ()


ALIVE = "alive"
# The wrapper runs but has not started the command yet: alive for termination, not yet `running`.
BOOTING = "booting"
# What the backend saw of the current attempt's process: alive (or booting), ended (with what
# it knows of the exit), or nothing (no attempt yet, or between attempts).
Observed = Exit | str | None


def backoff(failures: int, base: float, cap: float) -> float:
    """The wait before the next attempt after `failures` failed ones (the one backoff)."""
    return Backoff(initial=base, cap=cap).delay(failures)


def timed_out(state: RunState, policy: Policy, now: float) -> bool:
    return (
        policy.timeout is not None
        and state.first_started_at is not None
        and now >= state.first_started_at + policy.timeout
    )


def request_stop(state: RunState, now: float) -> RunState:
    """Remember that the run must stop; `decide` then signals the process (or ends the wait)."""
    if state.status in FINAL or state.terminate == Terminate.STOP:
        return state
    return replace(state, terminate=Terminate.STOP, terminate_at=now, term_sent=False, kill_sent=False)


def request_replace(state: RunState, now: float) -> RunState:
    """A long-running run got a new spec: end the current process so the next attempt uses it."""
    if state.status in FINAL or state.status in AWAITING_LAUNCH or state.terminate is not None:
        return state
    return replace(state, terminate=Terminate.REPLACE, terminate_at=now, term_sent=False, kill_sent=False)


def describe_exit(exit_: Exit) -> str:
    if exit_.code is None:
        return exit_.detail or "exit code unknown"
    if exit_.code < 0:
        return exit_.detail or f"killed by signal {-exit_.code}"
    text = f"exit code {exit_.code}"
    return f"{text} ({exit_.detail})" if exit_.detail else text


def decide(state: RunState, policy: Policy, observed: Observed, now: float) -> Step:
    """The next step of a run given what its current process is doing at `now`."""
    if state.status in FINAL:
        return Step(state)
    if state.status in AWAITING_LAUNCH:
        return _awaiting_launch(state, policy, now)
    if observed in (ALIVE, BOOTING):
        return _alive(state, policy, now, running=observed == ALIVE)
    if isinstance(observed, Exit):
        return _ended(state, policy, observed, now)
    # A process was expected but there is no trace of it: treat as an unknown end.
    return _ended(state, policy, Exit(None, detail="no record of the process"), now)


def _launch(state: RunState, now: float, *, changes: tuple[Change, ...] = ()) -> Step:
    attempt = state.attempt + 1
    status_change: tuple[Change, ...] = ()
    # A spec replacement keeps a service `running`; statuses never move backwards to `starting`.
    if state.status != RUNNING:
        status_change = (Change(STARTING, now, "launching", f"attempt {attempt}"),)
    new = replace(
        state,
        status=STARTING if state.status != RUNNING else RUNNING,
        attempt=attempt,
        first_started_at=state.first_started_at if state.first_started_at is not None else now,
        attempt_started_at=now,
        retry_at=None,
        terminate=None,
        terminate_at=None,
        term_sent=False,
        kill_sent=False,
    )
    return Step(new, changes + status_change, (Action.LAUNCH,))


def _awaiting_launch(state: RunState, policy: Policy, now: float) -> Step:
    if state.terminate == Terminate.STOP:
        new = replace(state, status=STOPPED, retry_at=None)
        return Step(
            new,
            (
                Change(STOPPING, now, "stop_requested", "stop requested before the next attempt started"),
                Change(STOPPED, now, "stopped", "stopped before the next attempt started"),
            ),
        )
    if timed_out(state, policy, now):
        return Step(
            replace(state, status=FAILED, retry_at=None),
            (Change(FAILED, now, "timeout", f"timeout of {_seconds(policy.timeout)} reached while waiting to retry"),),
        )
    if state.status == CREATED or state.retry_at is None or now >= state.retry_at:
        return _launch(state, now)
    return Step(state)


def _alive(state: RunState, policy: Policy, now: float, *, running: bool) -> Step:
    changes: list[Change] = []
    actions: list[Action] = []
    if state.status == STARTING and running:
        state = replace(state, status=RUNNING)
        changes.append(Change(RUNNING, now, "running", f"attempt {state.attempt} is running"))
    if state.terminate is None and timed_out(state, policy, now):
        state = replace(state, terminate=Terminate.TIMEOUT, terminate_at=now, term_sent=False, kill_sent=False)
    if state.terminate is not None:
        if not state.term_sent:
            actions.append(Action.TERMINATE)
            state = replace(state, term_sent=True)
            if state.terminate == Terminate.STOP and state.status != STOPPING:
                state = replace(state, status=STOPPING)
                changes.append(Change(STOPPING, now, "stop_requested", "sent SIGTERM to the process group"))
        elif not state.kill_sent and state.terminate_at is not None and now >= state.terminate_at + policy.stop_grace:
            actions.append(Action.KILL)
            state = replace(state, kill_sent=True)
    return Step(state, tuple(changes), tuple(actions))


def _ended(state: RunState, policy: Policy, exit_: Exit, now: float) -> Step:
    at = exit_.at if exit_.at is not None else now
    ended = replace(state, exit_code=exit_.code)
    how = describe_exit(exit_)
    if state.terminate == Terminate.STOP:
        return Step(replace(ended, status=STOPPED), (Change(STOPPED, at, "stopped", f"stopped ({how})"),))
    if state.terminate == Terminate.TIMEOUT:
        message = f"timeout of {_seconds(policy.timeout)} reached; process ended ({how})"
        return Step(replace(ended, status=FAILED), (Change(FAILED, at, "timeout", message),))
    if state.terminate == Terminate.REPLACE:
        updated = Change(RUNNING, now, "spec_updated", f"restarted with the new spec as attempt {state.attempt + 1}")
        return _launch(replace(ended, failures=0), now, changes=(updated,))
    if exit_.code == 0 and not policy.long_running:
        return Step(replace(ended, status=SUCCEEDED), (Change(SUCCEEDED, at, "succeeded", "exit code 0"),))
    if policy.long_running:
        ran_for = at - state.attempt_started_at if state.attempt_started_at is not None else 0.0
        failures = 1 if ran_for >= policy.stable_after else state.failures + 1
        delay = backoff(failures, policy.backoff_base, policy.backoff_cap)
        message = f"service process ended ({how}); restarting in {_seconds(delay)}"
        new = replace(ended, status=RETRYING, failures=failures, retry_at=now + delay)
        return Step(new, (Change(RETRYING, at, "restarting", message),))
    if exit_.code is None:
        return Step(replace(ended, status=UNKNOWN), (Change(UNKNOWN, at, "exit_unknown", how),))
    retries_used = state.attempt - 1
    if retries_used < policy.max_retries:
        failures = state.failures + 1
        delay = backoff(failures, policy.backoff_base, policy.backoff_cap)
        retry = f"retry {retries_used + 1} of {policy.max_retries}"
        message = f"attempt {state.attempt} failed ({how}); {retry} in {_seconds(delay)}"
        new = replace(ended, status=RETRYING, failures=failures, retry_at=now + delay)
        return Step(new, (Change(RETRYING, at, "retrying", message),))
    suffix = f" after {state.attempt} attempts" if state.attempt > 1 else ""
    return Step(replace(ended, status=FAILED), (Change(FAILED, at, "error", f"{how}{suffix}"),))


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}s"
