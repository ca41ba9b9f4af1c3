"""Capped exponential backoff and the retry loop, with an injected sleep."""

from __future__ import annotations

import pytest

from reconciler.source.backoff import Backoff, RetriesExhausted, retry


def test_schedule_grows_then_stays_at_the_cap() -> None:
    assert Backoff(attempts=7, initial=0.5, factor=3, cap=10).delays() == [
        0.5,
        1.5,
        4.5,
        10,
        10,
        10,
    ]
    assert Backoff(attempts=1).delays() == []


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"factor": 0.5}, {"initial": -1}, {"cap": -1}])
def test_invalid_policies_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        Backoff(**bad)


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def test_retries_transient_errors_with_the_schedule() -> None:
    slept: list[float] = []
    seen: list[tuple[int, float]] = []
    call = Flaky([TimeoutError(), TimeoutError()])
    result = retry(
        call,
        backoff=Backoff(attempts=4, initial=1, factor=2, cap=30),
        retryable=lambda e: isinstance(e, TimeoutError),
        sleep=slept.append,
        on_retry=lambda e, n, d: seen.append((n, d)),
    )
    assert (result, call.calls, slept, seen) == ("ok", 3, [1, 2], [(2, 1), (3, 2)])


def test_non_retryable_error_propagates_at_once() -> None:
    slept: list[float] = []
    call = Flaky([PermissionError("no")])
    with pytest.raises(PermissionError):
        retry(call, backoff=Backoff(), retryable=lambda e: isinstance(e, TimeoutError), sleep=slept.append)
    assert (call.calls, slept) == (1, [])


def test_gives_up_after_the_last_try() -> None:
    slept: list[float] = []
    call = Flaky([TimeoutError(str(n)) for n in range(10)])
    with pytest.raises(RetriesExhausted) as err:
        retry(
            call,
            backoff=Backoff(attempts=3, initial=2, factor=10, cap=5),
            retryable=lambda e: True,
            sleep=slept.append,
        )
    assert (call.calls, slept) == (3, [2, 5])
    assert (err.value.attempts, err.value.waited_s, str(err.value.last)) == (3, 7, "2")
