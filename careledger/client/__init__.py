"""CareLedger's publisher SDK: build, sign and publish CloudEvents, and verify receipts.

    from careledger.client import Publisher, ReceiptClient

    with Publisher.from_key_file("data/keys/publisher-demo.json",
                                 source="https://videoconsult.example/app") as client:
        delivery = client.publish(type="org.careledger.clinical.consultation.completed.v1",
                                  data={...}, subject="enc-1")
    receipt = ReceiptClient("http://127.0.0.1:8111",
                            genesis_file="data/genesis.json").wait_for(delivery.source, delivery.id)

Every refusal is a `CareLedgerClientError` with a reason; see docs/client.md.
"""

from careledger.client.errors import (
    CareLedgerClientError,
    ClientConfigError,
    EventBuildError,
    FetchError,
    GenesisPinError,
    IngestError,
    PublishError,
    ReceiptError,
    ReceiptPendingError,
    ReceiptTimeoutError,
    ServiceUnavailableError,
)
from careledger.client.event import check_signed_event, event_from_partial, signed_event
from careledger.client.ingest import INGEST_AUDIENCE, IngestAccepted, IngestClient
from careledger.client.publisher import (
    Delivery,
    EventProducer,
    Publisher,
    complete_event,
    produce_event,
)
from careledger.client.receipt import Receipt, genesis_fingerprint, pin_genesis, verify_receipt
from careledger.client.receipts import ReceiptClient, fetch_receipt

__all__ = [
    "INGEST_AUDIENCE",
    "CareLedgerClientError",
    "ClientConfigError",
    "Delivery",
    "EventBuildError",
    "EventProducer",
    "FetchError",
    "GenesisPinError",
    "IngestAccepted",
    "IngestClient",
    "IngestError",
    "PublishError",
    "Publisher",
    "Receipt",
    "ReceiptClient",
    "ReceiptError",
    "ReceiptPendingError",
    "ReceiptTimeoutError",
    "ServiceUnavailableError",
    "check_signed_event",
    "complete_event",
    "event_from_partial",
    "fetch_receipt",
    "genesis_fingerprint",
    "pin_genesis",
    "produce_event",
    "signed_event",
    "verify_receipt",
]
