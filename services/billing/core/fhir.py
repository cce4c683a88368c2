"""An issued invoice as FHIR R4 resources (Invoice, Claim, a collection Bundle), validated
with fhir.resources' R4B models, its money as exact decimals.

Money: FHIR `Money.value` is a JSON decimal. Amounts are integer minor units; each becomes
the `decimal.Decimal` `amount * 10**-e` built from text (exact, no context rounding), where
`e` is the currency's ISO 4217 minor-unit exponent from `MINOR_UNIT_EXPONENTS`; a currency
not in the table is refused (`UnknownCurrencyError`), never guessed. The resources are built
as plain dicts, validated by constructing the R4B model, and the dicts themselves are
returned: the models' own dumps turn decimals into floats (12.34 survives that,
90071992547409.91 does not). `fhir_json` writes a resource as JSON text with every decimal
written exactly as it is (`120.00`, `0.01`, `12000`): the one encoder for an answer.

The patient appears only as a pseudonym (an identifier reference, never a name); ids,
`fullUrl`s and timestamps are derived from the inputs alone (no clock, no randomness).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, Self

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.invoice import Invoice as FhirInvoice
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from services.billing.core.model import InvoiceStatus
from services.billing.core.settlement import Invoice, Settlement
from services.billing.errors import BillingError
from shared.events import DidKey, HexDigest, Timestamp, parse_timestamp

__all__ = [
    "BILLING_COMPONENT_SYSTEM",
    "CMS_PLACE_OF_SERVICE_SYSTEM",
    "CPT_SYSTEM",
    "INVOICE_SYSTEM",
    "MINOR_UNIT_EXPONENTS",
    "PATIENT_PSEUDONYM_SYSTEM",
    "PAYER_PLAN_SYSTEM",
    "PRACTITIONER_SYSTEM",
    "TARIFF_CONTRACT_HASH_SYSTEM",
    "TARIFF_CONTRACT_SYSTEM",
    "InvoiceView",
    "UnknownCurrencyError",
    "fhir_bundle",
    "fhir_claim",
    "fhir_decimal",
    "fhir_invoice",
    "fhir_json",
]

#: ISO 4217 minor-unit exponents of the currencies CareLedger can show. Deliberately small:
#: a currency missing here is refused rather than given a guessed exponent.
MINOR_UNIT_EXPONENTS: Final[Mapping[str, int]] = {
    "AUD": 2,
    "CAD": 2,
    "CHF": 2,
    "EUR": 2,
    "GBP": 2,
    "USD": 2,
    "JPY": 0,
    "KRW": 0,
    "BHD": 3,
    "JOD": 3,
    "KWD": 3,
    "OMR": 3,
    "TND": 3,
}

CPT_SYSTEM: Final = "http://www.ama-assn.org/go/cpt"
CMS_PLACE_OF_SERVICE_SYSTEM: Final = (
    "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
)
BILLING_COMPONENT_SYSTEM: Final = "https://careledger.org/fhir/CodeSystem/billing-component"
PATIENT_PSEUDONYM_SYSTEM: Final = "urn:careledger:patient-pseudonym"
PAYER_PLAN_SYSTEM: Final = "urn:careledger:payer-plan"
INVOICE_SYSTEM: Final = "urn:careledger:invoice"
TARIFF_CONTRACT_SYSTEM: Final = "urn:careledger:tariff-contract"
TARIFF_CONTRACT_HASH_SYSTEM: Final = "urn:careledger:tariff-contract-hash"
#: A practitioner is named by its did:key, a URI.
PRACTITIONER_SYSTEM: Final = "urn:ietf:rfc:3986"
_CLAIM_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/claim-type"
_PRIORITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/processpriority"
#: Names the deterministic (version 5) UUIDs of claims and bundle entries.
_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://careledger.org/fhir/billing")
_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_INVOICE_STATUS: Final[Mapping[InvoiceStatus, str]] = {
    InvoiceStatus.ISSUED: "issued",
    InvoiceStatus.SETTLED: "balanced",
    # FHIR has no disputed invoice: it stays issued, and a note says it is disputed.
    InvoiceStatus.DISPUTED: "issued",
    InvoiceStatus.VOIDED: "cancelled",
}

_Modifier = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9]{2}$")]


class UnknownCurrencyError(BillingError):
    """The currency is not in `MINOR_UNIT_EXPONENTS`: its amounts cannot be shown exactly."""

    def __init__(self, currency: str) -> None:
        super().__init__(f"currency {currency!r} has no known minor-unit exponent")
        self.currency = currency


class InvoiceView(BaseModel):
    """An issued invoice with what a FHIR client sees of its consultation and its state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    invoice: Invoice
    practitioner: DidKey
    patient: HexDigest  # the pseudonym: never a name, a DID or anything else
    consultation_start: Timestamp
    consultation_end: Timestamp
    modifiers: tuple[_Modifier, ...] = Field(max_length=4)
    place_of_service: Literal["02", "10"]
    issued_at: Timestamp
    status: InvoiceStatus
    settlement: Settlement | None  # None when nothing was paid

    @model_validator(mode="after")
    def _fits_fhir_and_itself(self) -> Self:
        if _FHIR_ID.fullmatch(self.invoice.invoice_id) is None:
            raise ValueError("invoice id is not a FHIR id (1-64 of A-Z a-z 0-9 - .)")
        if self.settlement is not None and (
            self.settlement.invoice_id != self.invoice.invoice_id
            or self.settlement.currency != self.invoice.charges.currency
        ):
            raise ValueError("the settlement is not of this invoice")
        return self


def fhir_decimal(amount: int, currency: str) -> Decimal:
    """`amount` minor units of `currency` as an exact decimal with the currency's digits
    (1234 USD -> 12.34, 0 USD -> 0.00, 12000 JPY -> 12000, 1 BHD -> 0.001)."""
    exponent = MINOR_UNIT_EXPONENTS.get(currency)
    if exponent is None:
        raise UnknownCurrencyError(currency)
    return Decimal(f"{amount}E-{exponent}")


def fhir_invoice(view: InvoiceView) -> dict[str, Any]:
    """The FHIR R4 Invoice of an issued invoice, validated with the R4B model."""
    charges = view.invoice.charges
    currency = charges.currency
    components = [
        _component(kind, code, _money(amount, currency))
        for kind, code, amount in (
            ("base", "charge", charges.charge),
            ("deduction", "adjustment", charges.adjustments),
            ("informational", "payer-share", charges.payer_share),
            ("informational", "patient-share", charges.patient_share),
            ("informational", "deductible", charges.deductible_applied),
            ("informational", "copay", charges.copay),
            ("informational", "coinsurance", charges.coinsurance),
        )
    ]
    resource: dict[str, Any] = {
        "resourceType": "Invoice",
        "id": view.invoice.invoice_id,
        "identifier": [
            {"use": "official", "system": INVOICE_SYSTEM, "value": view.invoice.invoice_id},
            {
                "use": "secondary",
                "system": TARIFF_CONTRACT_SYSTEM,
                "value": f"{charges.contract_id}/{charges.contract_version}",
            },
            {
                "use": "secondary",
                "system": TARIFF_CONTRACT_HASH_SYSTEM,
                "value": charges.contract_hash,
            },
        ],
        "status": _INVOICE_STATUS[view.status],
        "subject": _patient(view),
        "date": _instant(view.issued_at),
        "participant": [{"actor": _practitioner(view)}],
        "lineItem": [
            {
                "sequence": 1,
                "chargeItemCodeableConcept": _cpt(charges.service_code),
                "priceComponent": components,
            }
        ],
        "totalNet": _money(charges.payer_share + charges.patient_share, currency),
        "totalGross": _money(charges.charge, currency),
    }
    if view.settlement is not None:
        resource["totalPriceComponent"] = _settlement_components(view.settlement, currency)
    notes = _invoice_notes(view)
    if notes:
        resource["note"] = [{"text": note} for note in notes]
    FhirInvoice.model_validate(resource)
    return resource


def fhir_claim(view: InvoiceView) -> dict[str, Any]:
    """The FHIR R4 Claim (professional) the invoice bills its payer plan with, validated."""
    charges = view.invoice.charges
    currency = charges.currency
    item: dict[str, Any] = {
        "sequence": 1,
        "productOrService": _cpt(charges.service_code),
    }
    if view.modifiers:
        item["modifier"] = [_cpt(modifier) for modifier in view.modifiers]
    item |= {
        "servicedPeriod": {
            "start": _instant(view.consultation_start),
            "end": _instant(view.consultation_end),
        },
        "locationCodeableConcept": _coded(CMS_PLACE_OF_SERVICE_SYSTEM, view.place_of_service),
        "unitPrice": _money(charges.charge, currency),
        "net": _money(charges.charge, currency),
    }
    resource: dict[str, Any] = {
        "resourceType": "Claim",
        "id": _claim_id(view),
        "identifier": [{"system": INVOICE_SYSTEM, "value": view.invoice.invoice_id}],
        "status": "cancelled" if view.status is InvoiceStatus.VOIDED else "active",
        "type": _coded(_CLAIM_TYPE_SYSTEM, "professional"),
        "use": "claim",
        "patient": _patient(view),
        "created": _instant(view.issued_at),
        "provider": _practitioner(view),
        "priority": _coded(_PRIORITY_SYSTEM, "normal"),
        "insurance": [
            {
                "sequence": 1,
                "focal": True,
                "coverage": {
                    "type": "Coverage",
                    "identifier": {"system": PAYER_PLAN_SYSTEM, "value": charges.plan_id},
                },
            }
        ],
        "item": [item],
        "total": _money(charges.charge, currency),
    }
    Claim.model_validate(resource)
    return resource


def fhir_bundle(view: InvoiceView) -> dict[str, Any]:
    """A `collection` Bundle of the invoice's Invoice and Claim, validated. Its id and the
    entries' `urn:uuid` fullUrls are derived from the invoice id; it has no `timestamp`
    (assembling it reads no clock)."""
    invoice, claim = fhir_invoice(view), fhir_claim(view)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(_NAMESPACE, f"Bundle/{view.invoice.invoice_id}")),
        "type": "collection",
        "entry": [
            {"fullUrl": _full_url(invoice["id"]), "resource": invoice},
            {"fullUrl": _full_url(claim["id"]), "resource": claim},
        ],
    }
    Bundle.model_validate(bundle)
    return bundle


def fhir_json(resource: Mapping[str, Any]) -> bytes:
    """The UTF-8 JSON text of a resource these functions return, each decimal written
    exactly as it is (never through a float), members in their order. Refuses floats."""
    return _json_text(resource).encode("utf-8")


def _json_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        members = (
            f"{json.dumps(key, ensure_ascii=False)}:{_json_text(item)}"
            for key, item in value.items()
        )
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_text(item) for item in value) + "]"
    if isinstance(value, float):
        raise TypeError("a float has no exact place in a FHIR money answer")
    return json.dumps(value, ensure_ascii=False)


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"value": fhir_decimal(amount, currency), "currency": currency}


def _component(kind: str, code: str, amount: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "code": _coded(BILLING_COMPONENT_SYSTEM, code), "amount": amount}


def _settlement_components(settlement: Settlement, currency: str) -> list[dict[str, Any]]:
    # Payments are not price components: `informational` says they do not change the price.
    return [
        _component("informational", code, _money(amount, currency))
        for code, amount in (
            ("paid-by-payer", settlement.paid_by_payer),
            ("paid-by-patient", settlement.paid_by_patient),
            ("outstanding", settlement.outstanding),
            ("refund-due-payer", settlement.refund_due_payer),
            ("refund-due-patient", settlement.refund_due_patient),
        )
    ]


def _invoice_notes(view: InvoiceView) -> list[str]:
    notes = []
    if view.modifiers:
        # Invoice.lineItem has no modifier element in R4; the Claim carries them as codes.
        notes.append(f"Line 1: CPT modifiers {', '.join(view.modifiers)}")
    if view.status is InvoiceStatus.DISPUTED:
        notes.append("Disputed: a party disputes this invoice; payments still count")
    return notes


def _patient(view: InvoiceView) -> dict[str, Any]:
    return {
        "type": "Patient",
        "identifier": {"system": PATIENT_PSEUDONYM_SYSTEM, "value": view.patient},
    }


def _practitioner(view: InvoiceView) -> dict[str, Any]:
    return {
        "type": "Practitioner",
        "identifier": {"system": PRACTITIONER_SYSTEM, "value": view.practitioner},
    }


def _cpt(code: str) -> dict[str, Any]:
    return _coded(CPT_SYSTEM, code)


def _coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _claim_id(view: InvoiceView) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"Claim/{view.invoice.invoice_id}"))


def _full_url(resource_id: str) -> str:
    """`urn:uuid:<id>` for an id that is a UUID already, else for the UUID derived from it."""
    if _UUID.fullmatch(resource_id) is None:
        resource_id = str(uuid.uuid5(_NAMESPACE, resource_id))
    return f"urn:uuid:{resource_id}"


def _instant(text: str) -> str:
    """An RFC 3339 timestamp in FHIR's form: UTC, `Z`, a fraction only when there is one
    (digits past microseconds are dropped, as `parse_timestamp` drops them)."""
    moment: datetime = parse_timestamp(text)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}{fraction}Z"
