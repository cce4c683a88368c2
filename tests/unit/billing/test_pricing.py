"""Pricing by hand-calculated examples, and every refusal reason."""

from __future__ import annotations

import pytest

from services.billing.core.pricing import (
    PlanState,
    PricingRefused,
    RefusalReason,
    divide_half_even,
    price,
)
from services.billing.core.tariff import content_hash
from tests.unit.billing.examples import consultation, contract, state


def test_video_visit_copay_only() -> None:
    # 98005 costs 120.00 (12000). Copay 25.00 (2500), no deductible, no coinsurance:
    # patient 2500; payer 12000 - 2500 = 9500; adjustments 0.
    charges = price(contract(), consultation(modifiers=["95"]), state())
    assert (charges.charge, charges.payer_share, charges.patient_share) == (12000, 9500, 2500)
    assert (charges.copay, charges.deductible_applied, charges.coinsurance) == (2500, 0, 0)
    assert charges.adjustments == 0
    assert charges.contract_version == 3
    assert charges.contract_hash == content_hash(contract())
    assert charges.plan_state.deductible_met == 0


def test_deductible_partly_met() -> None:
    # Deductible 500.00 (50000), 450.00 met: 5000 left, all of it applied (12000 > 5000).
    # Rest 12000 - 5000 = 7000; coinsurance 20 %: payer 7000 * 8000 / 10000 = 5600 (exact),
    # patient coinsurance 1400. Patient 5000 + 0 + 1400 = 6400; payer 5600; sum 12000.
    charges = price(contract(), consultation(plan_id="deductible"), state("deductible", met=45000))
    assert (charges.payer_share, charges.patient_share) == (5600, 6400)
    assert (charges.deductible_applied, charges.copay, charges.coinsurance) == (5000, 0, 1400)
    assert charges.plan_state.deductible_met == 50000


def test_deductible_larger_than_the_charge() -> None:
    # 0 met of 50000: all 12000 go to the deductible; nothing is left to share.
    charges = price(contract(), consultation(plan_id="deductible"), state("deductible"))
    assert (charges.payer_share, charges.patient_share) == (0, 12000)
    assert charges.plan_state.deductible_met == 12000


def test_coinsurance_with_rounding_and_an_adjustment() -> None:
    # Price 12000, plan allows 10333: adjustment 12000 - 10333 = 1667.
    # Copay 1000; rest 9333; coinsurance 12.5 % (1250 bp):
    # payer 9333 * 8750 / 10000 = 8166.375 -> 8166; patient coinsurance 9333 - 8166 = 1167.
    # Patient 1000 + 1167 = 2167; 8166 + 2167 + 1667 = 12000.
    charges = price(contract(), consultation(plan_id="coinsurance"), state("coinsurance"))
    assert charges.adjustments == 1667
    assert (charges.payer_share, charges.patient_share, charges.coinsurance) == (8166, 2167, 1167)


def test_a_tie_rounds_the_payer_share_half_to_even() -> None:
    # Allowed 9333 (adjustment 2667), coinsurance 50 %: payer 9333 * 5000 / 10000 = 4666.5,
    # a tie: half to even gives 4666 (half up would give 4667). Patient 9333 - 4666 = 4667.
    charges = price(contract(), consultation(plan_id="half"), state("half"))
    assert (charges.payer_share, charges.patient_share, charges.adjustments) == (4666, 4667, 2667)


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (46665000, 10000, 4666),
        (46675000, 10000, 4668),
        (7, 2, 4),
        (5, 2, 2),
        (0, 3, 0),
        (4, 3, 1),
        (5, 3, 2),
    ],
)
def test_divide_half_even(numerator: int, denominator: int, expected: int) -> None:
    assert divide_half_even(numerator, denominator) == expected


def test_audio_only_established_visit() -> None:
    # 99213 with modifier 93 at place 02 prices like any other code: 9000 - copay 2500.
    charges = price(
        contract(),
        consultation(service_code="99213", modifiers=["93"], place_of_service="02"),
        state(),
    )
    assert (charges.payer_share, charges.patient_share) == (6500, 2500)


def test_copay_larger_than_the_allowed_amount() -> None:
    # 98016 costs 2500 and the copay is 2500: the patient pays all of it, the payer nothing.
    charges = price(contract(), consultation(service_code="98016"), state())
    assert (charges.payer_share, charges.patient_share) == (0, 2500)


_REFUSALS = [
    ({"service_code": "98100"}, state(), RefusalReason.UNKNOWN_CODE),
    ({"service_code": "98000"}, state(), RefusalReason.UNKNOWN_CODE),  # not in this tariff
    ({"service_code": "99442"}, state(), RefusalReason.DELETED_CODE),
    ({"service_code": "99213"}, state(), RefusalReason.MISSING_MODIFIER),
    ({"service_code": "99213", "modifiers": ["25"]}, state(), RefusalReason.MISSING_MODIFIER),
    ({"service_code": "99213", "modifiers": ["95", "93"]}, state(), RefusalReason.INVALID_MODIFIER),
    ({"modifiers": ["9"]}, state(), RefusalReason.INVALID_MODIFIER),
    ({"modifiers": ["95", "95"]}, state(), RefusalReason.INVALID_MODIFIER),
    ({"place_of_service": "11"}, state(), RefusalReason.INVALID_PLACE_OF_SERVICE),
    ({"plan_id": "gold"}, state("gold"), RefusalReason.UNKNOWN_PLAN),
    ({}, state("deductible"), RefusalReason.PLAN_STATE_MISMATCH),
    ({"end": "2025-03-04T08:59:59Z"}, state(), RefusalReason.END_BEFORE_START),
    (
        {"start": "2024-12-31T23:00:00Z", "end": "2024-12-31T23:20:00Z"},
        state(),
        RefusalReason.NOT_YET_EFFECTIVE,
    ),
    ({}, state(currency="EUR"), RefusalReason.CURRENCY_MISMATCH),
]


@pytest.mark.parametrize(("changes", "plan_state", "reason"), _REFUSALS)
def test_refusals(changes: dict[str, object], plan_state: PlanState, reason: RefusalReason) -> None:
    with pytest.raises(PricingRefused) as refused:
        price(contract(), consultation(**changes), plan_state)
    assert refused.value.reason is reason
    assert refused.value.detail


def test_every_refusal_reason_is_exercised() -> None:
    # Keeps the parametrised list above in step with the enum.
    reasons = {reason for _, _, reason in _REFUSALS}
    assert reasons == set(RefusalReason)


def test_deleted_code_wins_over_unknown() -> None:
    with pytest.raises(PricingRefused) as refused:
        price(contract(), consultation(service_code="99441", modifiers=["95"]), state())
    assert refused.value.reason is RefusalReason.DELETED_CODE
    assert "2025" in refused.value.detail


@pytest.mark.parametrize(("numerator", "denominator"), [(-1, 2), (1, 0), (1, -3)])
def test_divide_half_even_refuses_a_negative_numerator_or_a_non_positive_denominator(
    numerator: int, denominator: int
) -> None:
    with pytest.raises(ValueError, match="non-negative numerator"):
        divide_half_even(numerator, denominator)
