"""Billing events (topic `billing.events`, signed by the billing service): amounts, never PHI.

Every billing decision is an event on the chain, with enough in it to be re-checked by anyone
holding the chain (`careledger billing replay`): an invoice names the consultation event it
bills (`consultation`: its `(source, id)`), the contract that priced it (id, version and
content hash; the contract itself is on the chain in its `ContractDeployed`), the registry
height whose practitioner standings it relied on, and the patient's plan state before it.
The patient appears only as their keyed pseudonym. Amounts are integers of minor units.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Final, Self

from pydantic import Field, StrictInt, StrictStr, model_validator

from shared.events import DidKey, EventData, HexDigest, Timestamp

__all__ = [
    "BILLING_SCHEMAS",
    "CLAIM_SUBMITTED",
    "CONSULTATION_COMPLETED",
    "CONTRACT_DEPLOYED",
    "INVOICE_DISPUTED",
    "INVOICE_ISSUED",
    "INVOICE_REJECTED",
    "INVOICE_SETTLED",
    "INVOICE_VOIDED",
    "PAYMENT_RECEIVED",
    "REFUND_ISSUED",
    "Amount",
    "BillingId",
    "ClaimSubmitted",
    "ConsultationRef",
    "ContractDeployed",
    "DisputeReason",
    "InvoiceDisputed",
    "InvoiceIssued",
    "InvoiceRejected",
    "InvoiceSettled",
    "InvoiceVoided",
    "PayingParty",
    "PaymentReceived",
    "RefundIssued",
    "VoidReason",
]

#: The clinical event billing consumes (published on `clinical.events` by a platform).
CONSULTATION_COMPLETED: Final = "org.careledger.clinical.consultation.completed.v1"

CONTRACT_DEPLOYED: Final = "org.careledger.billing.contract.deployed.v1"
INVOICE_ISSUED: Final = "org.careledger.billing.invoice.issued.v1"
INVOICE_REJECTED: Final = "org.careledger.billing.invoice.rejected.v1"
CLAIM_SUBMITTED: Final = "org.careledger.billing.claim.submitted.v1"
PAYMENT_RECEIVED: Final = "org.careledger.billing.payment.received.v1"
INVOICE_SETTLED: Final = "org.careledger.billing.invoice.settled.v1"
REFUND_ISSUED: Final = "org.careledger.billing.refund.issued.v1"
INVOICE_DISPUTED: Final = "org.careledger.billing.invoice.disputed.v1"
INVOICE_VOIDED: Final = "org.careledger.billing.invoice.voided.v1"

#: Invoice, claim, payment, refund and dispute ids: UUIDs in their lower-case spelling.
BillingId = Annotated[
    StrictStr,
    Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]
#: An amount in integer minor units of the invoice's currency (never a float, never negative).
Amount = Annotated[StrictInt, Field(ge=0, le=2**53 - 1)]
_Currency = Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]
_Identifier = Annotated[StrictStr, Field(min_length=1, max_length=200)]
_Height = Annotated[StrictInt, Field(ge=0)]
#: A payment reference from the payer's or patient's payment system: a token, never free text.
_Reference = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")]


class PayingParty(StrEnum):
    """Who pays a share of an invoice."""

    PAYER = "payer"
    PATIENT = "patient"


class DisputeReason(StrEnum):
    """Why a party disputes an invoice (a code: free text could carry PHI)."""

    INCORRECT_AMOUNT = "incorrect_amount"
    SERVICE_NOT_RENDERED = "service_not_rendered"
    DUPLICATE = "duplicate"
    NOT_COVERED = "not_covered"
    OTHER = "other"


class VoidReason(StrEnum):
    """Why an invoice was voided."""

    BILLED_IN_ERROR = "billed_in_error"
    DUPLICATE = "duplicate"
    DISPUTE_UPHELD = "dispute_upheld"
    OTHER = "other"


class ConsultationRef(EventData):
    """The `(source, id)` of a sealed consultation event: where an invoice's input is."""

    source: Annotated[StrictStr, Field(min_length=1, max_length=2048)]
    id: Annotated[StrictStr, Field(min_length=1, max_length=200)]


class ContractDeployed(EventData):
    """An admin deployed a tariff contract version; `contract` is the whole document, so the
    chain alone lets anyone re-price what it priced. `content_hash` is the SHA-256 of its
    RFC 8785 bytes."""

    contract_id: _Identifier
    version: Annotated[StrictInt, Field(ge=1, le=2**53 - 1)]
    content_hash: HexDigest
    effective_from: Timestamp
    contract: dict[str, Any]


class InvoiceIssued(EventData):
    """A consultation was priced under a contract: the charge and who owes what.

    charge = payer share + patient share + adjustments; patient share = deductible applied +
    copay + coinsurance. `deductible_met_before` is the patient's plan state (for `plan_id`
    in `plan_year`) before this invoice; `registry_height` is the chain height whose
    practitioner standings the billing service had applied when it billed.
    """

    invoice_id: BillingId
    encounter_id: _Identifier
    consultation: ConsultationRef
    practitioner: DidKey
    patient: HexDigest
    registry_height: _Height
    contract_id: _Identifier
    contract_version: Annotated[StrictInt, Field(ge=1, le=2**53 - 1)]
    contract_hash: HexDigest
    currency: _Currency
    plan_id: _Identifier
    plan_year: Annotated[StrictInt, Field(ge=1, le=9999)]
    service_code: Annotated[StrictStr, Field(pattern=r"^[0-9]{5}$")]
    deductible_met_before: Amount
    charge: Amount
    payer_share: Amount
    patient_share: Amount
    adjustments: Amount
    deductible_applied: Amount
    copay: Amount
    coinsurance: Amount

    @model_validator(mode="after")
    def _amounts_add_up(self) -> Self:
        if self.charge != self.payer_share + self.patient_share + self.adjustments:
            raise ValueError("charge is not payer share + patient share + adjustments")
        if self.patient_share != self.deductible_applied + self.copay + self.coinsurance:
            raise ValueError("patient share is not deductible applied + copay + coinsurance")
        return self


class InvoiceRejected(EventData):
    """A consultation event could not be billed, and why (`reason` is a machine code; the
    `detail` is written by the billing service, never copied from the input)."""

    consultation: ConsultationRef
    encounter_id: _Identifier | None = None
    registry_height: _Height
    reason: Annotated[StrictStr, Field(pattern=r"^[a-z][a-z_]{0,63}$")]
    detail: Annotated[StrictStr, Field(max_length=500)]
    invoice_id: BillingId | None = None  # `duplicate_encounter`: the invoice already issued


class ClaimSubmitted(EventData):
    """The payer's share of an invoice was claimed from the payer plan."""

    claim_id: BillingId
    invoice_id: BillingId
    plan_id: _Identifier
    service_code: Annotated[StrictStr, Field(pattern=r"^[0-9]{5}$")]
    currency: _Currency
    amount: Amount


class PaymentReceived(EventData):
    """A party paid towards an invoice: `applied` reduced what it owed, `excess` was over."""

    invoice_id: BillingId
    payment_id: BillingId
    party: PayingParty
    amount: Annotated[StrictInt, Field(gt=0, le=2**53 - 1)]
    currency: _Currency
    reference: _Reference
    applied: Amount
    excess: Amount

    @model_validator(mode="after")
    def _split(self) -> Self:
        if self.amount != self.applied + self.excess:
            raise ValueError("amount is not applied + excess")
        return self


class InvoiceSettled(EventData):
    """Every share of the invoice is paid."""

    invoice_id: BillingId
    currency: _Currency
    paid_by_payer: Amount
    paid_by_patient: Amount


class RefundIssued(EventData):
    """What a party paid above its share was refunded to it."""

    invoice_id: BillingId
    refund_id: BillingId
    party: PayingParty
    currency: _Currency
    amount: Annotated[StrictInt, Field(gt=0, le=2**53 - 1)]


class InvoiceDisputed(EventData):
    """A party disputes an invoice."""

    invoice_id: BillingId
    dispute_id: BillingId
    party: PayingParty
    reason: DisputeReason


class InvoiceVoided(EventData):
    """An admin voided an invoice that nobody had paid; its journal entry is reversed."""

    invoice_id: BillingId
    reason: VoidReason


#: The `data` schema of every billing event type.
BILLING_SCHEMAS: Final[Mapping[str, type[EventData]]] = MappingProxyType(
    {
        CONTRACT_DEPLOYED: ContractDeployed,
        INVOICE_ISSUED: InvoiceIssued,
        INVOICE_REJECTED: InvoiceRejected,
        CLAIM_SUBMITTED: ClaimSubmitted,
        PAYMENT_RECEIVED: PaymentReceived,
        INVOICE_SETTLED: InvoiceSettled,
        REFUND_ISSUED: RefundIssued,
        INVOICE_DISPUTED: InvoiceDisputed,
        INVOICE_VOIDED: InvoiceVoided,
    }
)
