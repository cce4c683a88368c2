"""Hypothesis properties of pricing: amounts add up, deterministic, integers only."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.billing.core.pricing import price
from services.billing.core.tariff import (
    BASIS_POINTS,
    MODIFIED_EM_CODES,
    TELEMEDICINE_EM_CODES,
    TariffContract,
    content_hash,
)
from tests.unit.billing.examples import assert_no_float, consultation, state

_CODES = sorted(TELEMEDICINE_EM_CODES | MODIFIED_EM_CODES)
_AMOUNT = st.integers(min_value=0, max_value=10**9)


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], str, int]:
    """A contract document with one plan, a code it prices and a deductible already met."""
    code = draw(st.sampled_from(_CODES))
    tariff_price = draw(_AMOUNT)
    allowed = draw(st.one_of(st.just({}), _AMOUNT.map(lambda amount: {code: amount})))
    plan = {
        "plan_id": "p",
        "copay": draw(_AMOUNT),
        "deductible": draw(_AMOUNT),
        "coinsurance_bp": draw(st.integers(min_value=0, max_value=BASIS_POINTS)),
        "allowed": allowed,
    }
    document = {
        "contract_id": "c",
        "version": draw(st.integers(min_value=1, max_value=1000)),
        "currency": "EUR",
        "effective_from": "2025-01-01T00:00:00Z",
        "prices": {code: tariff_price},
        "plans": [plan],
    }
    return document, code, draw(_AMOUNT)


def _price(document: dict[str, Any], code: str, met: int) -> Any:
    visit = consultation(plan_id="p", service_code=code, modifiers=["95"])
    return price(TariffContract.model_validate(document), visit, state("p", met, "EUR"))


@given(cases())
def test_amounts_add_up(case: tuple[dict[str, Any], str, int]) -> None:
    charges = _price(*case)
    assert charges.charge == charges.payer_share + charges.patient_share + charges.adjustments
    assert charges.patient_share == charges.deductible_applied + charges.copay + charges.coinsurance
    assert min(charges.payer_share, charges.patient_share, charges.adjustments) >= 0
    assert charges.plan_state.deductible_met == case[2] + charges.deductible_applied


@given(cases())
def test_no_float_in_any_output(case: tuple[dict[str, Any], str, int]) -> None:
    charges = _price(*case)
    assert_no_float(charges.model_dump())
    assert_no_float(charges.model_dump(mode="json"))


@given(cases(), st.randoms(use_true_random=False))
def test_pricing_is_deterministic_whatever_the_key_order(
    case: tuple[dict[str, Any], str, int], shuffler: random.Random
) -> None:
    document, code, met = case
    shuffled = _shuffle(json.loads(json.dumps(document)), shuffler)
    assert _price(shuffled, code, met) == _price(document, code, met)
    assert content_hash(TariffContract.model_validate(shuffled)) == content_hash(
        TariffContract.model_validate(document)
    )


def _shuffle(value: Any, shuffler: random.Random) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        shuffler.shuffle(keys)
        return {key: _shuffle(value[key], shuffler) for key in keys}
    if isinstance(value, list):
        return [_shuffle(item, shuffler) for item in value]
    return value
