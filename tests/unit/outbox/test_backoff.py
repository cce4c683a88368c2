"""The relay's back-off schedule: exponential, capped, zero before any failure."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.outbox import Backoff


def test_the_default_schedule() -> None:
    assert Backoff().delay(0) == 0.0
    assert Backoff().schedule(10) == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0]


def test_a_custom_schedule() -> None:
    backoff = Backoff(initial=0.5, multiplier=3.0, maximum=10.0)
    assert backoff.schedule(5) == [0.5, 1.5, 4.5, 10.0, 10.0]


def test_a_broker_down_for_days_does_not_overflow() -> None:
    assert Backoff().delay(1_000_000) == 30.0


@pytest.mark.parametrize("bad", [{"initial": 0}, {"initial": 2, "maximum": 1}, {"multiplier": 0.5}])
def test_nonsense_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="back-off"):
        Backoff(**bad)


@given(
    initial=st.floats(0.001, 5),
    multiplier=st.floats(1, 4),
    extra=st.floats(0, 100),
    failures=st.integers(1, 200),
)
def test_delays_never_shrink_and_never_pass_the_cap(
    initial: float, multiplier: float, extra: float, failures: int
) -> None:
    backoff = Backoff(initial=initial, multiplier=multiplier, maximum=initial + extra)
    delays = backoff.schedule(failures)
    assert delays[0] == pytest.approx(initial)
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert all(0 < d <= backoff.maximum for d in delays)
