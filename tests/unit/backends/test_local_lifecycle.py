"""The local backend's supervision policy, as a pure function of state, observation and clock."""

from dataclasses import replace

from reconciler.backends.local.lifecycle import (
    ALIVE,
    BOOTING,
    Action,
    Exit,
    Policy,
    RunState,
    Terminate,
    backoff,
    decide,
    describe_exit,
    request_replace,
    request_stop,
)

JOB = Policy(stop_grace=5.0, backoff_base=1.0, backoff_cap=8.0)
T0 = 1_000.0


def statuses(step) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.status for c in step.changes]


def started(policy: Policy = JOB, at: float = T0) -> RunState:
    step = decide(RunState(), policy, None, at)
    assert step.actions == (Action.LAUNCH,)
    return step.state


def test_created_run_is_launched_as_attempt_one() -> None:
    step = decide(RunState(), JOB, None, T0)
    assert statuses(step) == ["starting"]
    assert step.actions == (Action.LAUNCH,)
    assert step.state.attempt == 1
    assert step.state.first_started_at == T0


def test_alive_process_moves_starting_to_running_once() -> None:
    step = decide(started(), JOB, ALIVE, T0 + 0.1)
    assert statuses(step) == ["running"]
    again = decide(step.state, JOB, ALIVE, T0 + 0.2)
    assert again.changes == () and again.actions == ()


def test_exit_zero_succeeds_at_the_recorded_exit_time() -> None:
    step = decide(started(), JOB, Exit(0, at=T0 + 3), T0 + 10)
    assert statuses(step) == ["succeeded"]
    assert step.changes[0].at == T0 + 3
    assert decide(step.state, JOB, None, T0 + 20).changes == ()


def test_nonzero_exit_without_retries_fails_with_the_code() -> None:
    step = decide(started(), JOB, Exit(7), T0 + 1)
    assert statuses(step) == ["failed"]
    assert "exit code 7" in step.changes[0].message
    assert step.state.exit_code == 7


def test_retries_back_off_exponentially_then_fail() -> None:
    policy = replace(JOB, max_retries=2)
    state = started(policy)
    step = decide(state, policy, Exit(1), T0 + 1)
    assert statuses(step) == ["retrying"]
    assert step.state.retry_at == T0 + 2  # 1s
    assert decide(step.state, policy, None, T0 + 1.5).actions == ()  # still waiting
    step = decide(step.state, policy, None, T0 + 2)
    assert step.actions == (Action.LAUNCH,) and step.state.attempt == 2
    step = decide(step.state, policy, Exit(1), T0 + 3)
    assert statuses(step) == ["retrying"]
    assert step.state.retry_at == T0 + 5  # 2s
    step = decide(step.state, policy, None, T0 + 5)
    assert step.state.attempt == 3
    step = decide(step.state, policy, Exit(1), T0 + 6)
    assert statuses(step) == ["failed"]
    assert "after 3 attempts" in step.changes[0].message


def test_backoff_is_capped() -> None:
    assert [backoff(n, 1.0, 8.0) for n in range(0, 7)] == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_timeout_terminates_then_kills_after_grace_and_fails() -> None:
    policy = replace(JOB, timeout=10.0)
    state = decide(started(policy), policy, ALIVE, T0 + 1).state
    assert decide(state, policy, ALIVE, T0 + 9.9).actions == ()
    step = decide(state, policy, ALIVE, T0 + 10)
    assert step.actions == (Action.TERMINATE,)
    assert step.state.terminate == Terminate.TIMEOUT
    assert decide(step.state, policy, ALIVE, T0 + 14).actions == ()
    killed = decide(step.state, policy, ALIVE, T0 + 15)
    assert killed.actions == (Action.KILL,)
    assert decide(killed.state, policy, ALIVE, T0 + 16).actions == ()  # SIGKILL sent once
    end = decide(killed.state, policy, Exit(-9, detail="killed by SIGKILL"), T0 + 16)
    assert statuses(end) == ["failed"]
    assert end.changes[0].reason == "timeout"


def test_timeout_counts_from_the_first_attempt_and_ends_a_retry_wait() -> None:
    policy = replace(JOB, timeout=10.0, max_retries=5, backoff_base=20.0, backoff_cap=20.0)
    state = decide(started(policy), policy, Exit(1), T0 + 1).state
    assert state.status == "retrying"
    step = decide(state, policy, None, T0 + 10)
    assert statuses(step) == ["failed"] and step.changes[0].reason == "timeout"


def test_stop_of_running_process_goes_through_stopping_to_stopped() -> None:
    state = decide(started(), JOB, ALIVE, T0 + 1).state
    state = request_stop(state, T0 + 2)
    step = decide(state, JOB, ALIVE, T0 + 2)
    assert statuses(step) == ["stopping"] and step.actions == (Action.TERMINATE,)
    assert decide(step.state, JOB, ALIVE, T0 + 7).actions == (Action.KILL,)
    end = decide(step.state, JOB, Exit(-15), T0 + 3)
    assert statuses(end) == ["stopped"]


def test_stop_while_waiting_to_retry_never_launches() -> None:
    policy = replace(JOB, max_retries=3)
    state = decide(started(policy), policy, Exit(1), T0 + 1).state
    step = decide(request_stop(state, T0 + 1.1), policy, None, T0 + 5)
    assert statuses(step) == ["stopping", "stopped"]
    assert step.actions == ()


def test_a_successful_exit_after_stop_is_still_stopped() -> None:
    state = request_stop(decide(started(), JOB, ALIVE, T0).state, T0 + 1)
    state = decide(state, JOB, ALIVE, T0 + 1).state
    assert statuses(decide(state, JOB, Exit(0), T0 + 2)) == ["stopped"]


def test_unknown_exit_of_a_job_is_unknown_with_the_reason() -> None:
    detail = "the process ended while the daemon was not running"
    step = decide(started(), JOB, Exit(None, detail=detail), T0 + 1)
    assert statuses(step) == ["unknown"]
    assert step.changes[0].message == detail


def test_missing_process_record_is_an_unknown_end() -> None:
    step = decide(started(), JOB, None, T0 + 1)
    assert statuses(step) == ["unknown"]


def test_service_is_restarted_whatever_the_exit_and_backoff_resets_when_stable() -> None:
    policy = Policy(long_running=True, backoff_base=1.0, backoff_cap=60.0, stable_after=30.0)
    state = decide(started(policy), policy, ALIVE, T0).state
    step = decide(state, policy, Exit(0), T0 + 1)
    assert statuses(step) == ["retrying"] and step.changes[0].reason == "restarting"
    assert step.state.retry_at == T0 + 2
    state = decide(step.state, policy, None, T0 + 2).state
    step = decide(state, policy, Exit(1), T0 + 3)
    assert step.state.retry_at == T0 + 3 + 2  # second quick failure: 2s
    state = decide(step.state, policy, None, T0 + 5).state
    step = decide(state, policy, Exit(None, detail="gone"), T0 + 100)  # ran 95s: healthy
    assert step.state.retry_at == T0 + 101
    assert statuses(step) == ["retrying"]


def test_replace_restarts_a_service_without_moving_backwards() -> None:
    policy = Policy(long_running=True)
    state = decide(started(policy), policy, ALIVE, T0).state
    state = request_replace(state, T0 + 1)
    step = decide(state, policy, ALIVE, T0 + 1)
    assert step.actions == (Action.TERMINATE,) and step.changes == ()
    step = decide(step.state, policy, Exit(-15), T0 + 2)
    assert step.actions == (Action.LAUNCH,)
    assert statuses(step) == ["running"] and step.changes[0].reason == "spec_updated"
    assert step.state.attempt == 2 and step.state.status == "running"


def test_final_runs_never_change() -> None:
    for status in ("succeeded", "failed", "stopped", "unknown"):
        state = RunState(status=status, attempt=1)
        assert decide(state, JOB, ALIVE, T0) == decide(state, JOB, ALIVE, T0)
        assert decide(state, JOB, ALIVE, T0).changes == ()
        assert request_stop(state, T0) == state


def test_booting_wrapper_is_not_yet_running_but_can_be_stopped() -> None:
    state = started()
    assert decide(state, JOB, BOOTING, T0 + 0.01).changes == ()
    step = decide(request_stop(state, T0 + 0.02), JOB, BOOTING, T0 + 0.02)
    assert step.actions == (Action.TERMINATE,)
    assert statuses(step) == ["stopping"]


def test_exit_descriptions() -> None:
    assert describe_exit(Exit(3)) == "exit code 3"
    assert describe_exit(Exit(127, detail="cannot start foo")) == "exit code 127 (cannot start foo)"
    assert describe_exit(Exit(-9, detail="killed by SIGKILL")) == "killed by SIGKILL"
    assert describe_exit(Exit(-9)) == "killed by signal 9"
    assert describe_exit(Exit(None)) == "exit code unknown"
