"""FHIR R4 Invoice, Claim and Bundle of an issued invoice: valid R4B, exact money, no PHI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pydantic
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.invoice import Invoice as FhirInvoice

from services.billing.core.fhir import (
    BILLING_COMPONENT_SYSTEM,
    CMS_PLACE_OF_SERVICE_SYSTEM,
    CPT_SYSTEM,
    INVOICE_SYSTEM,
    PATIENT_PSEUDONYM_SYSTEM,
    PAYER_PLAN_SYSTEM,
    PRACTITIONER_SYSTEM,
    TARIFF_CONTRACT_HASH_SYSTEM,
    TARIFF_CONTRACT_SYSTEM,
    InvoiceView,
    UnknownCurrencyError,
    fhir_bundle,
    fhir_claim,
    fhir_decimal,
    fhir_invoice,
    fhir_json,
)
from services.billing.core.pricing import price
from services.billing.core.settlement import Invoice, Party, Payment, settle
from services.billing.core.tariff import content_hash
from services.billing.errors import BillingError
from tests.unit.billing.examples import (
    PATIENT,
    PRACTITIONER,
    assert_no_float,
    consultation,
    contract,
    state,
)

INVOICE_ID = "0193a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"
MAX_SAFE = 2**53 - 1


def make_invoice(
    *, plan_id: str = "copay-only", modifiers: tuple[str, ...] = ("95",), **contract_changes: Any
) -> Invoice:
    """An invoice priced by the billing core itself (demo contract, with changes)."""
    tariff = contract(**contract_changes)
    charges = price(
        tariff,
        consultation(plan_id=plan_id, modifiers=list(modifiers)),
        state(plan_id, currency=tariff.currency),
    )
    return Invoice(invoice_id=INVOICE_ID, charges=charges)


def make_view(invoice: Invoice | None = None, **changes: Any) -> InvoiceView:
    invoice = invoice or make_invoice()
    base: dict[str, Any] = {
        "invoice": invoice,
        "practitioner": PRACTITIONER,
        "patient": PATIENT,
        "consultation_start": "2025-03-04T09:00:00Z",
        "consultation_end": "2025-03-04T09:25:00Z",
        "modifiers": ("95",),
        "place_of_service": "10",
        "issued_at": "2025-03-04T09:30:00Z",
        "status": "issued",
        "settlement": None,
    }
    return InvoiceView.model_validate({**base, **changes})


def as_floats(value: Any) -> Any:
    """What fhir.resources' own JSON dump makes of our decimals: floats."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: as_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_floats(item) for item in value]
    return value


def strings(value: Any) -> Iterator[str]:
    """Every string of a JSON value, member names included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def components(resource: dict[str, Any], member: str) -> dict[str, tuple[str, Decimal]]:
    """Price components by CareLedger code: (type, amount value)."""
    found = {}
    for component in resource[member]:
        coding = component["code"]["coding"][0]
        assert coding["system"] == BILLING_COMPONENT_SYSTEM
        assert component["amount"]["currency"] == "USD"
        found[coding["code"]] = (component["type"], component["amount"]["value"])
    return found


# --- validity: each output is what the R4B model accepts and dumps ---------------------


def test_invoice_is_valid_r4b_and_what_the_model_dumps() -> None:
    out = fhir_invoice(make_view())
    model = FhirInvoice.model_validate(out)
    # Nothing dropped or rewritten by the model, except decimals it would make floats.
    assert model.model_dump(mode="json", exclude_none=True) == as_floats(out)
    assert out["resourceType"] == "Invoice"
    assert out["id"] == INVOICE_ID
    assert out["date"] == "2025-03-04T09:30:00Z"


def test_claim_is_valid_r4b_and_what_the_model_dumps() -> None:
    out = fhir_claim(make_view())
    model = Claim.model_validate(out)
    assert model.model_dump(mode="json", exclude_none=True) == as_floats(out)
    assert out["resourceType"] == "Claim"


def test_bundle_is_valid_r4b_collection_of_both() -> None:
    view = make_view()
    out = fhir_bundle(view)
    Bundle.model_validate(out)
    assert out["type"] == "collection"
    assert "timestamp" not in out  # no clock
    assert [entry["resource"] for entry in out["entry"]] == [fhir_invoice(view), fhir_claim(view)]
    invoice_entry, claim_entry = out["entry"]
    # A UUID invoice id is its own urn:uuid; the claim's id is a (derived) UUID too.
    assert invoice_entry["fullUrl"] == f"urn:uuid:{INVOICE_ID}"
    assert claim_entry["fullUrl"] == f"urn:uuid:{claim_entry['resource']['id']}"
    assert_no_float(out)


def test_bundle_derives_a_uuid_full_url_for_a_non_uuid_invoice_id() -> None:
    invoice = make_invoice().model_copy(update={"invoice_id": "inv-1"})
    out = fhir_bundle(make_view(invoice))
    Bundle.model_validate(out)
    full_url = out["entry"][0]["fullUrl"]
    assert full_url.startswith("urn:uuid:")
    assert full_url != "urn:uuid:inv-1"
    assert out["entry"][0]["resource"]["id"] == "inv-1"


# --- the Invoice mapping -----------------------------------------------------------------


def test_invoice_amounts_and_components_coinsurance_plan() -> None:
    # The coinsurance plan (docs' worked example): P 12000, allowed 10333, adjustments 1667,
    # copay 1000, payer 8166, coinsurance 1167, patient 2167.
    out = fhir_invoice(make_view(make_invoice(plan_id="coinsurance")))
    assert out["totalGross"] == {"value": Decimal("120.00"), "currency": "USD"}
    assert out["totalNet"] == {"value": Decimal("103.33"), "currency": "USD"}
    (line,) = out["lineItem"]
    assert line["sequence"] == 1
    assert line["chargeItemCodeableConcept"] == {
        "coding": [{"system": CPT_SYSTEM, "code": "98005"}]
    }
    assert components(line, "priceComponent") == {
        "charge": ("base", Decimal("120.00")),
        "adjustment": ("deduction", Decimal("16.67")),
        "payer-share": ("informational", Decimal("81.66")),
        "patient-share": ("informational", Decimal("21.67")),
        "deductible": ("informational", Decimal("0.00")),
        "copay": ("informational", Decimal("10.00")),
        "coinsurance": ("informational", Decimal("11.67")),
    }


def test_invoice_identifies_the_contract_by_id_version_and_hash() -> None:
    out = fhir_invoice(make_view())
    assert out["identifier"] == [
        {"use": "official", "system": INVOICE_SYSTEM, "value": INVOICE_ID},
        {"use": "secondary", "system": TARIFF_CONTRACT_SYSTEM, "value": "tariff-demo/3"},
        {
            "use": "secondary",
            "system": TARIFF_CONTRACT_HASH_SYSTEM,
            "value": content_hash(contract()),
        },
    ]


def test_invoice_names_the_practitioner_by_did() -> None:
    out = fhir_invoice(make_view())
    actor = {
        "type": "Practitioner",
        "identifier": {"system": PRACTITIONER_SYSTEM, "value": PRACTITIONER},
    }
    assert out["participant"] == [{"actor": actor}]


def test_modifiers_are_a_note_on_the_invoice_and_codes_on_the_claim() -> None:
    view = make_view()
    assert fhir_invoice(view)["note"] == [{"text": "Line 1: CPT modifiers 95"}]
    (item,) = fhir_claim(view)["item"]
    assert item["modifier"] == [{"coding": [{"system": CPT_SYSTEM, "code": "95"}]}]


def test_without_modifiers_neither_note_nor_modifier() -> None:
    view = make_view(make_invoice(modifiers=()), modifiers=())
    invoice, claim = fhir_invoice(view), fhir_claim(view)
    assert "note" not in invoice
    assert "modifier" not in claim["item"][0]
    FhirInvoice.model_validate(invoice)
    Claim.model_validate(claim)


def test_settlement_amounts_are_informational_total_components() -> None:
    invoice = make_invoice()  # payer 9500, patient 2500
    payments = [
        Payment(
            invoice_id=INVOICE_ID,
            party=Party.PAYER,
            amount=9500,
            currency="USD",
            reference="ref-1",
            idempotency_key="k1",
        ),
        Payment(
            invoice_id=INVOICE_ID,
            party=Party.PATIENT,
            amount=2501,
            currency="USD",
            reference="ref-2",
            idempotency_key="k2",
        ),
    ]
    view = make_view(invoice, status="settled", settlement=settle(invoice, payments))
    out = fhir_invoice(view)
    FhirInvoice.model_validate(out)
    assert components(out, "totalPriceComponent") == {
        "paid-by-payer": ("informational", Decimal("95.00")),
        "paid-by-patient": ("informational", Decimal("25.01")),
        "outstanding": ("informational", Decimal("0.00")),
        "refund-due-payer": ("informational", Decimal("0.00")),
        "refund-due-patient": ("informational", Decimal("0.01")),
    }
    assert_no_float(out)


def test_nothing_paid_has_no_total_components() -> None:
    assert "totalPriceComponent" not in fhir_invoice(make_view())


# --- statuses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "invoice_status", "claim_status"),
    [
        ("issued", "issued", "active"),
        ("settled", "balanced", "active"),
        ("disputed", "issued", "active"),
        ("voided", "cancelled", "cancelled"),
    ],
)
def test_statuses(status: str, invoice_status: str, claim_status: str) -> None:
    view = make_view(status=status)
    invoice, claim = fhir_invoice(view), fhir_claim(view)
    assert invoice["status"] == invoice_status
    assert claim["status"] == claim_status
    disputed = [note for note in invoice["note"] if note["text"].startswith("Disputed")]
    assert len(disputed) == (1 if status == "disputed" else 0)


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        make_view(status="paid")


# --- the Claim mapping -------------------------------------------------------------------


def test_claim_mapping() -> None:
    out = fhir_claim(make_view(place_of_service="02"))
    assert out["identifier"] == [{"system": INVOICE_SYSTEM, "value": INVOICE_ID}]
    assert out["type"] == {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}
        ]
    }
    assert out["use"] == "claim"
    assert out["created"] == "2025-03-04T09:30:00Z"
    assert out["priority"] == {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}
        ]
    }
    assert out["provider"] == {
        "type": "Practitioner",
        "identifier": {"system": PRACTITIONER_SYSTEM, "value": PRACTITIONER},
    }
    assert out["insurance"] == [
        {
            "sequence": 1,
            "focal": True,
            "coverage": {
                "type": "Coverage",
                "identifier": {"system": PAYER_PLAN_SYSTEM, "value": "copay-only"},
            },
        }
    ]
    (item,) = out["item"]
    assert item["sequence"] == 1
    assert item["productOrService"] == {"coding": [{"system": CPT_SYSTEM, "code": "98005"}]}
    assert item["servicedPeriod"] == {
        "start": "2025-03-04T09:00:00Z",
        "end": "2025-03-04T09:25:00Z",
    }
    assert item["locationCodeableConcept"] == {
        "coding": [{"system": CMS_PLACE_OF_SERVICE_SYSTEM, "code": "02"}]
    }
    money = {"value": Decimal("120.00"), "currency": "USD"}
    assert item["unitPrice"] == item["net"] == out["total"] == money


def test_timestamps_are_written_in_utc_with_z() -> None:
    view = make_view(
        consultation_start="2025-03-04T10:00:00+01:00",
        consultation_end="2025-03-04T09:25:00.5Z",
        issued_at="2025-03-04T09:30:00.1234567Z",
    )
    claim = fhir_claim(view)
    assert claim["item"][0]["servicedPeriod"] == {
        "start": "2025-03-04T09:00:00Z",
        "end": "2025-03-04T09:25:00.500000Z",
    }
    assert claim["created"] == "2025-03-04T09:30:00.123456Z"  # truncated, never rounded up
    model = Claim.model_validate(claim)
    assert model.model_dump(mode="json", exclude_none=True) == as_floats(claim)


def test_claim_id_is_derived_from_the_invoice_id() -> None:
    first = fhir_claim(make_view())["id"]
    assert first == fhir_claim(make_view())["id"]
    other = make_invoice().model_copy(update={"invoice_id": "another-invoice"})
    assert fhir_claim(make_view(other))["id"] != first


# --- money: exact decimals, never floats ---------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount", "text"),
    [
        ("USD", 1234, "12.34"),
        ("USD", 1, "0.01"),
        ("USD", 0, "0.00"),
        ("USD", MAX_SAFE, "90071992547409.91"),
        ("EUR", 12000, "120.00"),
        ("JPY", 0, "0"),
        ("JPY", 12000, "12000"),
        ("JPY", MAX_SAFE, "9007199254740991"),
        ("BHD", 1, "0.001"),
        ("KWD", 12000, "12.000"),
        ("TND", MAX_SAFE, "9007199254740.991"),
    ],
)
def test_money_is_exact_in_every_exponent(currency: str, amount: int, text: str) -> None:
    assert str(fhir_decimal(amount, currency)) == text
    # Through the whole pipeline: a contract in that currency pricing 98005 at `amount`.
    invoice = make_invoice(currency=currency, prices={"98005": amount})
    out = fhir_bundle(make_view(invoice))
    Bundle.model_validate(out)
    assert_no_float(out)
    gross = out["entry"][0]["resource"]["totalGross"]
    assert gross == {"value": Decimal(text), "currency": currency}
    assert str(gross["value"]) == text  # the currency's digits are kept (120.00, not 120)
    encoded = fhir_json(out)
    assert f'"totalGross":{{"value":{text},"currency":"{currency}"}}'.encode() in encoded
    assert f'"total":{{"value":{text},"currency":"{currency}"}}'.encode() in encoded
    # Read back with exact decimals, the JSON text is the returned value.
    assert json.loads(encoded, parse_float=Decimal) == out


def test_fhir_json_is_plain_json() -> None:
    out = fhir_invoice(make_view())
    assert json.loads(fhir_json(out)) == as_floats(out)
    assert fhir_json({"a": [1, "é", True, None], "b": (Decimal("0.10"),)}) == (
        '{"a":[1,"é",true,null],"b":[0.10]}'.encode()
    )


def test_fhir_json_refuses_a_float() -> None:
    with pytest.raises(TypeError, match="float"):
        fhir_json({"value": 12.34})


@pytest.mark.parametrize("render", [fhir_invoice, fhir_claim, fhir_bundle])
def test_an_unknown_currency_is_refused(render: Any) -> None:
    invoice = make_invoice(currency="XAF")  # a real currency, absent from the table
    with pytest.raises(UnknownCurrencyError, match="XAF") as raised:
        render(make_view(invoice))
    assert isinstance(raised.value, BillingError)
    assert raised.value.currency == "XAF"


def test_fhir_decimal_refuses_an_unknown_currency() -> None:
    with pytest.raises(UnknownCurrencyError):
        fhir_decimal(1, "XXX")


# --- privacy: the pseudonym, and nothing else, names the patient ---------------------------


def test_only_the_pseudonym_identifies_the_patient() -> None:
    out = fhir_bundle(make_view(status="disputed"))
    invoice, claim = (entry["resource"] for entry in out["entry"])
    reference = {
        "type": "Patient",
        "identifier": {"system": PATIENT_PSEUDONYM_SYSTEM, "value": PATIENT},
    }
    assert invoice["subject"] == reference
    assert claim["patient"] == reference
    everything = list(strings(out))
    assert everything.count(PATIENT) == 2  # the two references, nowhere else
    assert everything.count(PATIENT_PSEUDONYM_SYSTEM) == 2
    for phi in ("name", "birthDate", "telecom", "address", "gender", "contained"):
        assert phi not in everything
    # The only resources are the Invoice and the Claim: no Patient resource at all.
    assert [entry["resource"]["resourceType"] for entry in out["entry"]] == ["Invoice", "Claim"]


@pytest.mark.parametrize("patient", ["Jane Doe", PRACTITIONER, "AB" * 32, "ab" * 31])
def test_a_patient_that_is_not_a_pseudonym_is_refused(patient: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        make_view(patient=patient)


# --- the view's own checks -----------------------------------------------------------------


def test_an_invoice_id_that_is_not_a_fhir_id_is_refused() -> None:
    invoice = make_invoice().model_copy(update={"invoice_id": "inv 1"})
    with pytest.raises(pydantic.ValidationError, match="FHIR id"):
        make_view(invoice)


@pytest.mark.parametrize("update", [{"invoice_id": "another"}, {"currency": "EUR"}])
def test_a_settlement_of_another_invoice_is_refused(update: dict[str, Any]) -> None:
    invoice = make_invoice()
    settlement = settle(invoice, []).model_copy(update=update)
    with pytest.raises(pydantic.ValidationError, match="not of this invoice"):
        make_view(invoice, settlement=settlement)


@pytest.mark.parametrize(
    "changes",
    [
        {"place_of_service": "11"},
        {"modifiers": ("9",)},
        {"modifiers": ("95", "GT", "X1", "X2", "X3")},
    ],
)
def test_places_and_modifiers_fhir_cannot_carry_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        make_view(**changes)


# --- determinism ---------------------------------------------------------------------------


def test_same_input_same_bytes() -> None:
    first = fhir_json(fhir_bundle(make_view()))
    second = fhir_json(fhir_bundle(make_view(make_invoice())))
    assert first == second
    assert fhir_bundle(make_view())["id"] == fhir_bundle(make_view())["id"]
