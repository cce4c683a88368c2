"""The cut policy: whichever of max_events, max_bytes, max_wait comes first; never empty."""

from __future__ import annotations

import pytest

from services.sealer.config import SealerSettings
from services.sealer.core.cut import CutPolicy

POLICY = CutPolicy(max_events=3, max_bytes=100, max_wait=0.2)


def test_an_empty_block_is_never_cut_however_long_it_waited() -> None:
    assert not POLICY.should_cut(event_count=0, byte_size=0, opened_at=None, now=1e9)
    assert not POLICY.should_cut(event_count=0, byte_size=0, opened_at=0.0, now=1e9)


@pytest.mark.parametrize(
    ("count", "size", "elapsed", "cut"),
    [
        (1, 10, 0.0, False),
        (2, 99, 0.19, False),
        (3, 10, 0.0, True),  # max_events
        (1, 100, 0.0, True),  # max_bytes
        (1, 10, 0.2, True),  # max_wait
        (5, 500, 5.0, True),
    ],
)
def test_whichever_limit_comes_first_cuts(count: int, size: int, elapsed: float, cut: bool) -> None:
    got = POLICY.should_cut(event_count=count, byte_size=size, opened_at=0.0, now=elapsed)
    assert got is cut


def test_wait_budget_is_idle_while_empty_else_the_rest_of_max_wait() -> None:
    assert POLICY.wait_budget(opened_at=None, now=5.0, idle=1.0) == 1.0
    assert POLICY.wait_budget(opened_at=5.0, now=5.05, idle=1.0) == pytest.approx(0.15)
    assert POLICY.wait_budget(opened_at=5.0, now=9.0, idle=1.0) == 0.0
    assert POLICY.wait_budget(opened_at=5.0, now=5.0, idle=0.1) == 0.1


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        CutPolicy(max_events=0)
    with pytest.raises(ValueError, match="positive"):
        CutPolicy(max_wait=-1.0)


def test_defaults_and_env_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SealerSettings().cut_policy() == CutPolicy(500, 1024 * 1024, 0.2)
    monkeypatch.setenv("CARELEDGER_BLOCK_MAX_EVENTS", "7")
    monkeypatch.setenv("CARELEDGER_BLOCK_MAX_BYTES", "4096")
    monkeypatch.setenv("CARELEDGER_BLOCK_MAX_WAIT_SECONDS", "0.05")
    assert SealerSettings().cut_policy() == CutPolicy(7, 4096, 0.05)


def test_an_event_that_would_overflow_max_bytes_cuts_the_block_before_it() -> None:
    assert POLICY.overflows(event_count=1, byte_size=60, incoming=41)
    assert not POLICY.overflows(event_count=1, byte_size=60, incoming=40)
    assert not POLICY.overflows(event_count=0, byte_size=0, incoming=500)  # alone: its own block
