"""The billing event schemas refuse amounts that do not add up, and signed billing events say
where to find them on the chain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.billing.core.events import billing_source, sign_billing_event
from services.billing.core.pricing import Charges, price
from shared.crypto import SigningKey
from shared.envelope import encode_event, parse_and_verify
from shared.events.billing import INVOICE_VOIDED, InvoiceIssued, InvoiceVoided, PaymentReceived
from tests.unit.billing.examples import PATIENT, PRACTITIONER, consultation, contract, state

INVOICE = "6f1c2b1e-6a7b-4c1d-9e2f-0a1b2c3d4e5f"


def _issued(**changes: Any) -> dict[str, Any]:
    charges = price(contract(), consultation(plan_id="coinsurance"), state("coinsurance"))
    base = {
        "invoice_id": INVOICE,
        "encounter_id": "enc-1",
        "consultation": {"source": "https://video.example/", "id": "c-1"},
        "practitioner": PRACTITIONER,
        "patient": PATIENT,
        "registry_height": 3,
        "contract_id": charges.contract_id,
        "contract_version": charges.contract_version,
        "contract_hash": charges.contract_hash,
        "currency": "USD",
        "plan_id": "coinsurance",
        "plan_year": 2025,
        "service_code": "98005",
        "deductible_met_before": 0,
        **{
            name: getattr(charges, name)
            for name in (
                "charge",
                "payer_share",
                "patient_share",
                "adjustments",
                "deductible_applied",
                "copay",
                "coinsurance",
            )
        },
    }
    return base | changes


def test_an_invoice_whose_amounts_add_up_is_valid() -> None:
    assert InvoiceIssued.model_validate(_issued()).charge == 12000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"payer_share": 8167}, "charge is not payer share"),
        ({"patient_share": 2168, "adjustments": 1666}, "patient share is not deductible"),
    ],
)
def test_an_invoice_whose_amounts_do_not_add_up_is_refused(
    changes: dict[str, int], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        InvoiceIssued.model_validate(_issued(**changes))


def test_charges_refuse_amounts_that_do_not_add_up() -> None:
    charges = price(contract(), consultation(plan_id="coinsurance"), state("coinsurance"))
    fields = charges.model_dump()
    with pytest.raises(ValidationError, match="charge is not payer share"):
        Charges.model_validate(fields | {"charge": charges.charge + 1})
    with pytest.raises(ValidationError, match="patient share is not deductible"):
        Charges.model_validate(
            fields | {"copay": charges.copay + 1, "coinsurance": charges.coinsurance}
        )


def test_a_payment_is_split_into_applied_and_excess_exactly() -> None:
    payment = {
        "invoice_id": INVOICE,
        "payment_id": INVOICE,
        "party": "patient",
        "amount": 100,
        "currency": "USD",
        "reference": "card:tok-1",
        "applied": 60,
        "excess": 40,
    }
    assert PaymentReceived.model_validate(payment).excess == 40
    with pytest.raises(ValidationError, match="amount is not applied"):
        PaymentReceived.model_validate(payment | {"excess": 41})
    with pytest.raises(ValidationError):
        PaymentReceived.model_validate(payment | {"reference": "free text, with spaces"})


def test_a_signed_billing_event_verifies_and_names_its_place_on_the_chain() -> None:
    key = SigningKey(bytes(range(1, 33)))
    signed = sign_billing_event(
        InvoiceVoided(invoice_id=INVOICE, reason="billed_in_error"),
        subject=INVOICE,
        key=key,
        chain_id="chain-x",
        event_id="01890a5d-ac96-774b-bcce-b302099a8057",
        time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    parsed = parse_and_verify(encode_event(signed.event))
    assert parsed.signer == key.did
    assert signed.reference() == {
        "source": billing_source("chain-x"),
        "id": "01890a5d-ac96-774b-bcce-b302099a8057",
        "type": INVOICE_VOIDED,
    }
    assert signed.event["subject"] == INVOICE
    assert signed.event["time"] == "2026-01-02T03:04:05.000000Z"
