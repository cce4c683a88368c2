"""The SDK's errors: one base class, stable reason codes, evidence on receipts."""

from __future__ import annotations

from careledger.client import (
    CareLedgerClientError,
    EventBuildError,
    IngestError,
    ReceiptError,
    ReceiptTimeoutError,
)
from shared.errors import VerificationError


def test_every_error_is_a_client_error_with_a_reason() -> None:
    ingest = IngestError(403, "not_signer", "the caller must sign")
    assert (ingest.status, ingest.reason, ingest.detail) == (
        403,
        "not_signer",
        "the caller must sign",
    )
    assert str(ingest) == "HTTP 403 not_signer: the caller must sign"
    for error in (ingest, EventBuildError("x"), ReceiptTimeoutError("t"), ReceiptError("r")):
        assert isinstance(error, CareLedgerClientError)
    assert EventBuildError.reason == "invalid_event"
    assert isinstance(EventBuildError("x"), ValueError)
    assert isinstance(ReceiptTimeoutError("t"), TimeoutError)


def test_a_receipt_error_carries_its_evidence() -> None:
    error = ReceiptError("not final", expected=2, computed=1, height=3)
    assert isinstance(error, VerificationError)
    assert error.evidence() == {
        "error": "ReceiptError",
        "message": "not final",
        "expected": 2,
        "computed": 1,
        "height": 3,
    }
