"""Tariff contracts: versioned JSON documents pricing telehealth codes in integer minor units.

A contract names its currency (ISO 4217), the price of each service code it bills and the payer
plans it knows. Its identity is the hex SHA-256 of its RFC 8785 bytes (`content_hash`), so the
same document hashes the same whatever the key order it was written in. No floats: every
amount is a strict integer of minor units, every percentage an integer of basis points.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Final, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from shared.canonical import canonicalize
from shared.events import Timestamp

__all__ = [
    "AUDIO_ONLY_MODIFIER",
    "BASIS_POINTS",
    "DELETED_CODES",
    "MODIFIED_EM_CODES",
    "TELEHEALTH_PLACES",
    "TELEMEDICINE_EM_CODES",
    "VIDEO_MODIFIER",
    "Currency",
    "MinorUnits",
    "PayerPlan",
    "ServiceCode",
    "TariffContract",
    "content_hash",
]

#: 100 % in basis points: coinsurance is an integer number of hundredths of a percent.
BASIS_POINTS: Final = 10_000
#: Telemedicine E/M codes introduced in 2025 (audio-video, audio-only, brief check-in).
TELEMEDICINE_EM_CODES: Final = frozenset(str(code) for code in range(98000, 98017))
#: Office/outpatient E/M codes billed for telehealth only with modifier 95 or 93
#: (99202-99205 new patient, 99211-99215 established; 99206-99210 do not exist).
MODIFIED_EM_CODES: Final = frozenset(
    str(code) for code in (*range(99202, 99206), *range(99211, 99216))
)
#: Telephone E/M codes deleted on 2025-01-01: refused, never priced.
DELETED_CODES: Final = frozenset({"99441", "99442", "99443"})
VIDEO_MODIFIER: Final = "95"
AUDIO_ONLY_MODIFIER: Final = "93"
#: CMS place of service: 02 telehealth outside the patient's home, 10 in the patient's home.
TELEHEALTH_PLACES: Final = frozenset({"02", "10"})

#: An amount in integer minor units (cents for USD); never negative, never a float.
MinorUnits = Annotated[StrictInt, Field(ge=0, le=2**53 - 1)]
#: An ISO 4217 alphabetic currency code.
Currency = Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]
#: A five-digit CPT code.
ServiceCode = Annotated[StrictStr, Field(pattern=r"^[0-9]{5}$")]
_Identifier = Annotated[StrictStr, Field(min_length=1, max_length=200)]
_BasisPoints = Annotated[StrictInt, Field(ge=0, le=BASIS_POINTS)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PayerPlan(_Frozen):
    """A payer plan: what the patient pays of an allowed amount, and what the payer pays.

    `coinsurance_bp` is the patient's coinsurance in basis points (2000 = 20 %). `allowed`
    caps the amount the plan recognises per code (possibly none); the rest of the tariff price
    is a contractual adjustment (written off, owed by nobody). Every member is required, so the
    validated contract dumps to exactly the document that was deployed (and hashes the same).
    """

    plan_id: _Identifier
    copay: MinorUnits
    deductible: MinorUnits
    coinsurance_bp: _BasisPoints
    allowed: dict[ServiceCode, MinorUnits]


class TariffContract(_Frozen):
    """A versioned tariff: prices per service code and the payer plans, in one currency."""

    contract_id: _Identifier
    version: Annotated[StrictInt, Field(ge=1, le=2**53 - 1)]
    currency: Currency
    effective_from: Timestamp
    prices: dict[ServiceCode, MinorUnits] = Field(min_length=1)
    plans: tuple[PayerPlan, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _codes_and_plans_are_billable(self) -> Self:
        deleted = sorted(DELETED_CODES.intersection(self.prices))
        if deleted:
            raise ValueError(f"codes {', '.join(deleted)} were deleted in 2025: not billable")
        known = TELEMEDICINE_EM_CODES | MODIFIED_EM_CODES
        foreign = sorted(set(self.prices) - known)
        if foreign:
            raise ValueError(f"codes {', '.join(foreign)} are not telehealth service codes")
        ids = [plan.plan_id for plan in self.plans]
        if len(set(ids)) != len(ids):
            raise ValueError("plan ids are not unique")
        for plan in self.plans:
            stray = sorted(set(plan.allowed) - set(self.prices))
            if stray:
                raise ValueError(f"plan {plan.plan_id!r} allows codes the tariff does not price")
        return self

    def plan(self, plan_id: str) -> PayerPlan | None:
        """The plan with this id, or None."""
        return next((plan for plan in self.plans if plan.plan_id == plan_id), None)


def content_hash(contract: TariffContract) -> str:
    """The hex SHA-256 of the contract's RFC 8785 bytes: its identity on the chain."""
    return hashlib.sha256(canonicalize(contract.model_dump(mode="json"))).hexdigest()
