"""The billing events the service signs: one CloudEvent per decision, on `billing.events`.

`source` is ``careledger:billing:<chain_id>``; `subject` is the invoice id (invoice, claim,
payment, refund and dispute events), the contract id (`ContractDeployed`) or the encounter id
(`InvoiceRejected`, the consultation event id when the encounter could not be read), so the
events about one invoice keep their order on one Kafka partition. No `data` member ever
holds a patient's DID or anything clinical beyond the billed service code.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from shared.crypto import SigningKey
from shared.events import EventData
from shared.events.billing import (
    BILLING_SCHEMAS,
    CLAIM_SUBMITTED,
    CONTRACT_DEPLOYED,
    INVOICE_DISPUTED,
    INVOICE_ISSUED,
    INVOICE_REJECTED,
    INVOICE_SETTLED,
    INVOICE_VOIDED,
    PAYMENT_RECEIVED,
    REFUND_ISSUED,
    ClaimSubmitted,
    ContractDeployed,
    InvoiceDisputed,
    InvoiceIssued,
    InvoiceRejected,
    InvoiceSettled,
    InvoiceVoided,
    PaymentReceived,
    RefundIssued,
)
from shared.events.signing import SignedEvent, sign_service_event

__all__ = ["BillingEvent", "billing_source", "sign_billing_event"]

_TYPES: Final[Mapping[type[EventData], str]] = {
    ContractDeployed: CONTRACT_DEPLOYED,
    InvoiceIssued: INVOICE_ISSUED,
    InvoiceRejected: INVOICE_REJECTED,
    ClaimSubmitted: CLAIM_SUBMITTED,
    PaymentReceived: PAYMENT_RECEIVED,
    InvoiceSettled: INVOICE_SETTLED,
    RefundIssued: REFUND_ISSUED,
    InvoiceDisputed: INVOICE_DISPUTED,
    InvoiceVoided: INVOICE_VOIDED,
}


def billing_source(chain_id: str) -> str:
    """The `source` of every event the billing service of chain `chain_id` signs."""
    return f"careledger:billing:{chain_id}"


#: A signed billing event and its (source, id, type).
BillingEvent = SignedEvent


def sign_billing_event(
    data: EventData,
    *,
    subject: str,
    key: SigningKey,
    chain_id: str,
    event_id: str,
    time: datetime,
) -> BillingEvent:
    """The signed event for `data`; its type follows from the data's schema."""
    return sign_service_event(
        data,
        types=_TYPES,
        schemas=BILLING_SCHEMAS,
        source=billing_source(chain_id),
        subject=subject,
        key=key,
        event_id=event_id,
        time=time,
    )
