"""The sweep's reading of "kept up": finality keeps pace and no lag builds within a point."""

from __future__ import annotations

from tests.bench.bench_pipeline import POLL_MS, kept_up


def point(offered: int, final: int, first: float, last: float) -> dict[str, object]:
    return {
        "offered_events_per_s": offered,
        "final_events_per_s": final,
        "p50_ms_first_second": first,
        "p50_ms_last_second": last,
    }


def test_a_point_is_kept_up_with_when_finality_keeps_pace_and_no_lag_builds() -> None:
    assert kept_up(point(1000, 990, 200.0, 210.0))
    assert kept_up(point(1000, 900, 200.0, 300.0 + POLL_MS))  # at both limits


def test_finality_falling_behind_or_a_growing_lag_is_not_kept_up_with() -> None:
    assert not kept_up(point(1000, 899, 200.0, 210.0))
    assert not kept_up(point(1000, 990, 200.0, 300.1 + POLL_MS))
    assert not kept_up(point(1336, 1300, 441.0, 719.0))  # the 2026-12-03 run's 50 % point


def test_a_point_without_its_numbers_is_not_kept_up_with() -> None:
    assert not kept_up(point(1000, 990, 200.0, 210.0) | {"p50_ms_last_second": None})
