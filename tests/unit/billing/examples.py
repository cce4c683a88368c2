"""Shared examples for the billing core tests: one tariff contract and a consultation."""

from __future__ import annotations

from typing import Any, Final

from services.billing.core.pricing import Consultation, PlanState
from services.billing.core.tariff import TariffContract
from shared.crypto import SigningKey

PRACTITIONER: Final = SigningKey(bytes(range(32))).did
PATIENT: Final = "ab" * 32  # a pseudonym: hex HMAC-SHA-256, never a DID or a name

CONTRACT_DOCUMENT: Final[dict[str, Any]] = {
    "contract_id": "tariff-demo",
    "version": 3,
    "currency": "USD",
    "effective_from": "2025-01-01T00:00:00Z",
    "prices": {"98005": 12000, "98008": 8000, "99213": 9000, "98016": 2500},
    "plans": [
        {
            "plan_id": "copay-only",
            "copay": 2500,
            "deductible": 0,
            "coinsurance_bp": 0,
            "allowed": {},
        },
        {
            "plan_id": "deductible",
            "copay": 0,
            "deductible": 50000,
            "coinsurance_bp": 2000,
            "allowed": {},
        },
        {
            "plan_id": "coinsurance",
            "copay": 1000,
            "deductible": 0,
            "coinsurance_bp": 1250,
            "allowed": {"98005": 10333},
        },
        {
            "plan_id": "half",
            "copay": 0,
            "deductible": 0,
            "coinsurance_bp": 5000,
            "allowed": {"98005": 9333},
        },
    ],
}


def contract(**changes: Any) -> TariffContract:
    """The demo contract, with top-level members replaced."""
    return TariffContract.model_validate({**CONTRACT_DOCUMENT, **changes})


def consultation(**changes: Any) -> Consultation:
    """A 98005 video visit at home under the copay-only plan, with members replaced."""
    base: dict[str, Any] = {
        "encounter_id": "enc-1",
        "practitioner": PRACTITIONER,
        "patient": PATIENT,
        "plan_id": "copay-only",
        "service_code": "98005",
        "modifiers": [],
        "place_of_service": "10",
        "start": "2025-03-04T09:00:00Z",
        "end": "2025-03-04T09:25:00Z",
    }
    return Consultation.model_validate({**base, **changes})


def state(plan_id: str = "copay-only", met: int = 0, currency: str = "USD") -> PlanState:
    """A plan state with this much of the deductible met."""
    return PlanState(plan_id=plan_id, currency=currency, deductible_met=met)


def assert_no_float(value: object) -> None:
    """Walk a model dump and fail on any float, however deep."""
    assert not isinstance(value, float), value
    if isinstance(value, dict):
        for item in value.values():
            assert_no_float(item)
    elif isinstance(value, list | tuple):
        for item in value:
            assert_no_float(item)
