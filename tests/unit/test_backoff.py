"""The one backoff: its schedule, its cap, its bounds."""

from __future__ import annotations

import pytest

from reconciler.backoff import Backoff


def test_doubles_from_initial_up_to_the_cap() -> None:
    b = Backoff(initial=2, cap=600)
    assert [b.delay(n) for n in range(0, 11)] == [0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600]


def test_a_long_outage_stays_at_the_cap_without_overflowing() -> None:
    assert Backoff(initial=1, cap=30, factor=10).delay(10_000) == 30


def test_delays_are_the_waits_between_tries_in_place() -> None:
    assert Backoff(initial=0.5, cap=10, factor=3, attempts=5).delays() == [0.5, 1.5, 4.5, 10]
    assert Backoff(attempts=1).delays() == []


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"factor": 0.5}, {"initial": -1}, {"cap": -1}])
def test_nonsense_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**bad)  # type: ignore[arg-type]
