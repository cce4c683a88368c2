"""Pricing: `(contract, consultation, plan state) -> charges`, pure and in integer minor units.

The algorithm (docs/billing-tariff.md): the tariff price is the charge; the plan's allowed
amount caps what is shared and the rest is a contractual adjustment; of the allowed amount
the patient pays first what is left of the deductible, then the copay, then coinsurance on
the rest, where the payer's part of that rest is rounded half to even and the patient pays
the remainder. Every refusal raises `PricingRefused` with a machine reason.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from services.billing.core.tariff import (
    AUDIO_ONLY_MODIFIER,
    BASIS_POINTS,
    DELETED_CODES,
    MODIFIED_EM_CODES,
    TELEHEALTH_PLACES,
    VIDEO_MODIFIER,
    Currency,
    MinorUnits,
    TariffContract,
    content_hash,
)
from services.billing.errors import BillingError
from shared.events import DidKey, HexDigest, Timestamp, parse_timestamp

__all__ = [
    "Charges",
    "Consultation",
    "PlanState",
    "PricingRefused",
    "RefusalReason",
    "divide_half_even",
    "price",
]

_TELEHEALTH_MODIFIERS: Final = frozenset({VIDEO_MODIFIER, AUDIO_ONLY_MODIFIER})
_Identifier = Annotated[StrictStr, Field(min_length=1, max_length=200)]
# Modifiers and places are checked by `price` (a refusal with a reason), not by the model, so
# a malformed one becomes an `InvoiceRejected` rather than an unparseable consultation.
_Token = Annotated[StrictStr, Field(max_length=16)]


class RefusalReason(StrEnum):
    """Why a consultation cannot be priced; the `reason` of an `InvoiceRejected` event."""

    UNKNOWN_CODE = "unknown_code"
    DELETED_CODE = "deleted_code"
    MISSING_MODIFIER = "missing_modifier"
    INVALID_MODIFIER = "invalid_modifier"
    INVALID_PLACE_OF_SERVICE = "invalid_place_of_service"
    UNKNOWN_PLAN = "unknown_plan"
    PLAN_STATE_MISMATCH = "plan_state_mismatch"
    END_BEFORE_START = "end_before_start"
    NOT_YET_EFFECTIVE = "not_yet_effective"
    CURRENCY_MISMATCH = "currency_mismatch"


# Named as the issue names it (a refusal, the future `InvoiceRejected`), not `...Error`.
class PricingRefused(BillingError):  # noqa: N818
    """The contract does not price this consultation: a machine reason and a human detail."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Consultation(_Frozen):
    """The billable facts of a completed consultation (no PHI: the patient is a pseudonym)."""

    encounter_id: _Identifier
    practitioner: DidKey
    patient: HexDigest
    plan_id: _Identifier
    service_code: _Token
    modifiers: tuple[_Token, ...] = Field(max_length=4)
    place_of_service: _Token
    start: Timestamp
    end: Timestamp


class PlanState(_Frozen):
    """A patient's standing in a payer plan: how much of the deductible is met so far."""

    plan_id: _Identifier
    currency: Currency
    deductible_met: MinorUnits


class Charges(_Frozen):
    """What a consultation costs and who owes it; the amounts of an `InvoiceIssued` event.

    Invariants, enforced on construction: charge = payer share + patient share + adjustments,
    and patient share = deductible applied + copay + coinsurance.
    """

    encounter_id: _Identifier
    contract_id: _Identifier
    contract_version: Annotated[StrictInt, Field(ge=1)]
    contract_hash: HexDigest
    currency: Currency
    plan_id: _Identifier
    service_code: _Token
    charge: MinorUnits
    payer_share: MinorUnits
    patient_share: MinorUnits
    adjustments: MinorUnits
    deductible_applied: MinorUnits
    copay: MinorUnits
    coinsurance: MinorUnits
    plan_state: PlanState

    @model_validator(mode="after")
    def _amounts_add_up(self) -> Self:
        if self.charge != self.payer_share + self.patient_share + self.adjustments:
            raise ValueError("charge is not payer share + patient share + adjustments")
        if self.patient_share != self.deductible_applied + self.copay + self.coinsurance:
            raise ValueError("patient share is not deductible applied + copay + coinsurance")
        return self


def divide_half_even(numerator: int, denominator: int) -> int:
    """`numerator / denominator` rounded to the nearest integer, ties to even (banker's)."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("divide_half_even takes a non-negative numerator, positive denominator")
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient


def price(contract: TariffContract, consultation: Consultation, plan_state: PlanState) -> Charges:
    """Price a consultation under a contract and the patient's plan state, or raise
    `PricingRefused`. Pure: the same inputs always give the same `Charges`."""
    code = consultation.service_code
    tariff_price = _tariff_price(contract, consultation)
    plan = contract.plan(consultation.plan_id)
    if plan is None:
        raise PricingRefused(
            RefusalReason.UNKNOWN_PLAN,
            f"contract {contract.contract_id} v{contract.version} has no plan "
            f"{consultation.plan_id!r}",
        )
    _check_plan_state(contract, consultation, plan_state)
    allowed = min(tariff_price, plan.allowed.get(code, tariff_price))
    remaining_deductible = max(0, plan.deductible - plan_state.deductible_met)
    deductible_applied = min(allowed, remaining_deductible)
    copay = min(plan.copay, allowed - deductible_applied)
    rest = allowed - deductible_applied - copay
    payer_share = divide_half_even(rest * (BASIS_POINTS - plan.coinsurance_bp), BASIS_POINTS)
    coinsurance = rest - payer_share
    return Charges(
        encounter_id=consultation.encounter_id,
        contract_id=contract.contract_id,
        contract_version=contract.version,
        contract_hash=content_hash(contract),
        currency=contract.currency,
        plan_id=plan.plan_id,
        service_code=code,
        charge=tariff_price,
        payer_share=payer_share,
        patient_share=deductible_applied + copay + coinsurance,
        adjustments=tariff_price - allowed,
        deductible_applied=deductible_applied,
        copay=copay,
        coinsurance=coinsurance,
        plan_state=plan_state.model_copy(
            update={"deductible_met": plan_state.deductible_met + deductible_applied}
        ),
    )


def _tariff_price(contract: TariffContract, consultation: Consultation) -> int:
    """The contract's price of the service, once the code, modifiers, place and times pass."""
    code = consultation.service_code
    if code in DELETED_CODES:
        raise PricingRefused(
            RefusalReason.DELETED_CODE,
            f"code {code} was deleted on 2025-01-01; bill 98000-98016 instead",
        )
    tariff_price = contract.prices.get(code)
    if tariff_price is None:
        raise PricingRefused(
            RefusalReason.UNKNOWN_CODE,
            f"contract {contract.contract_id} v{contract.version} does not price code {code!r}",
        )
    _check_modifiers(code, consultation.modifiers)
    if consultation.place_of_service not in TELEHEALTH_PLACES:
        raise PricingRefused(
            RefusalReason.INVALID_PLACE_OF_SERVICE,
            f"place of service {consultation.place_of_service!r} is not 02 or 10 (telehealth)",
        )
    start, end = parse_timestamp(consultation.start), parse_timestamp(consultation.end)
    if end < start:
        raise PricingRefused(
            RefusalReason.END_BEFORE_START,
            f"end {consultation.end} is earlier than start {consultation.start}",
        )
    if start < parse_timestamp(contract.effective_from):
        raise PricingRefused(
            RefusalReason.NOT_YET_EFFECTIVE,
            f"consultation started {consultation.start}, before contract "
            f"{contract.contract_id} v{contract.version} took effect ({contract.effective_from})",
        )
    return tariff_price


def _check_modifiers(code: str, modifiers: tuple[str, ...]) -> None:
    malformed = [m for m in modifiers if len(m) != 2 or not m.isascii() or not m.isalnum()]
    if malformed:
        raise PricingRefused(
            RefusalReason.INVALID_MODIFIER, f"modifier {malformed[0]!r} is not two characters"
        )
    if len(set(modifiers)) != len(modifiers):
        raise PricingRefused(RefusalReason.INVALID_MODIFIER, "a modifier is repeated")
    telehealth = _TELEHEALTH_MODIFIERS.intersection(modifiers)
    if len(telehealth) > 1:
        raise PricingRefused(
            RefusalReason.INVALID_MODIFIER, "modifiers 95 (video) and 93 (audio-only) conflict"
        )
    if code in MODIFIED_EM_CODES and not telehealth:
        raise PricingRefused(
            RefusalReason.MISSING_MODIFIER,
            f"code {code} is billed for telehealth only with modifier 95 (video) or 93 (audio)",
        )


def _check_plan_state(
    contract: TariffContract, consultation: Consultation, plan_state: PlanState
) -> None:
    if plan_state.plan_id != consultation.plan_id:
        raise PricingRefused(
            RefusalReason.PLAN_STATE_MISMATCH,
            f"plan state is for {plan_state.plan_id!r}, consultation is under "
            f"{consultation.plan_id!r}",
        )
    if plan_state.currency != contract.currency:
        raise PricingRefused(
            RefusalReason.CURRENCY_MISMATCH,
            f"plan state is kept in {plan_state.currency}, contract prices in {contract.currency}",
        )
