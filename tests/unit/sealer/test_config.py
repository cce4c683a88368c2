"""The sealer's settings: how many processes check signatures (ADR 0010)."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from services.sealer.config import MAX_VERIFY_WORKERS, SealerSettings, usable_cores


def test_verify_workers_default_to_the_cores_this_process_may_use() -> None:
    assert usable_cores() == min(MAX_VERIFY_WORKERS, len(os.sched_getaffinity(0)))
    assert SealerSettings().sealer_verify_workers == usable_cores()


@pytest.mark.parametrize("value", ["1", "2", str(MAX_VERIFY_WORKERS)])
def test_verify_workers_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CARELEDGER_SEALER_VERIFY_WORKERS", value)
    assert SealerSettings().sealer_verify_workers == int(value)


@pytest.mark.parametrize("value", ["0", str(MAX_VERIFY_WORKERS + 1), "two"])
def test_verify_workers_out_of_range_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CARELEDGER_SEALER_VERIFY_WORKERS", value)
    with pytest.raises(ValidationError, match="sealer_verify_workers"):
        SealerSettings()
