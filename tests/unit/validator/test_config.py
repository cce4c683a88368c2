"""The validator's checkpoint settings (ADR 0015) are checked at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.validator.config import ValidatorSettings


def test_the_checkpoint_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ValidatorSettings()
    assert settings.checkpoint_origin is None
    assert settings.checkpoint_cosign is True
    assert settings.witness_chains == {}


def test_the_checkpoint_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELEDGER_CHECKPOINT_ORIGIN", "ledger.example/eu-1")
    monkeypatch.setenv("CARELEDGER_CHECKPOINT_COSIGN", "false")
    monkeypatch.setenv("CARELEDGER_WITNESS_CHAINS", '{"careledger/b": "/etc/b/genesis.json"}')
    settings = ValidatorSettings()
    assert settings.checkpoint_origin == "ledger.example/eu-1"
    assert settings.checkpoint_cosign is False
    assert settings.witness_chains == {"careledger/b": Path("/etc/b/genesis.json")}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CARELEDGER_CHECKPOINT_ORIGIN", "has space"),
        ("CARELEDGER_CHECKPOINT_ORIGIN", "a+b"),
        ("CARELEDGER_WITNESS_CHAINS", '{"bad origin": "/g.json"}'),
    ],
)
def test_a_bad_origin_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match="origin"):
        ValidatorSettings()
