"""The SDK's errors: every refusal of `careledger.client` is a `CareLedgerClientError`.

Each class has a stable `reason` code (snake_case, never a class name) so that callers can
branch on it; the message says why in words. A receipt that does not verify is also a
`shared.errors.VerificationError` and carries its evidence (expected vs. computed).
"""

from __future__ import annotations

from typing import Any

from shared.errors import CareLedgerError, VerificationError

__all__ = [
    "CareLedgerClientError",
    "ClientConfigError",
    "EventBuildError",
    "FetchError",
    "GenesisPinError",
    "IngestError",
    "PublishError",
    "ReceiptError",
    "ReceiptPendingError",
    "ReceiptTimeoutError",
    "ServiceUnavailableError",
]


class CareLedgerClientError(CareLedgerError):
    """Base class of every error the SDK raises on purpose."""

    #: A stable machine-readable code (snake_case); never a class name.
    reason: str = "client_error"


class ClientConfigError(CareLedgerClientError):
    """A key file, genesis file or setting the SDK was given cannot be used."""

    reason = "bad_config"


class EventBuildError(CareLedgerClientError, ValueError):
    """The event would not pass admission's structural checks (or the topic is not an input
    topic); nothing was signed or published."""

    reason = "invalid_event"


class PublishError(CareLedgerClientError):
    """The broker did not acknowledge the event (acks=all) in time. It may still arrive:
    publishing the same event again is safe, admission rejects a second copy as `duplicate`."""

    reason = "not_delivered"


class FetchError(CareLedgerClientError):
    """A validator did not answer as its API promises; the message says what it answered."""

    reason = "fetch_failed"


class ServiceUnavailableError(FetchError):
    """A validator (or the sealer's ingest) could not be reached or answered 5xx; `wait_for`
    tries again."""

    reason = "service_unavailable"


class ReceiptPendingError(FetchError):
    """The event is not (yet) covered by a final block: not sealed, or sealed after the
    final head. `wait_for` tries again; `fetch` raises it."""

    reason = "receipt_pending"


class ReceiptTimeoutError(CareLedgerClientError, TimeoutError):
    """`wait_for` gave up: the event was not final within the timeout."""

    reason = "receipt_timeout"


class ReceiptError(CareLedgerClientError, VerificationError):
    """The proof, the block or its attestations do not show that the event was sealed.
    `context["check"]` names the check that failed when a shared verifier refused."""

    reason = "bad_receipt"

    def __init__(
        self, message: str, *, expected: Any = None, computed: Any = None, **context: Any
    ) -> None:
        VerificationError.__init__(self, message, expected=expected, computed=computed, **context)


class GenesisPinError(ReceiptError):
    """The genesis offered (by a validator or a file) is not the pinned one, or does not
    verify."""

    reason = "genesis_mismatch"


class IngestError(CareLedgerClientError):
    """The HTTP ingest refused the event: `status`, and `reason`/`detail` from the API's one
    error shape (`{"reason", "detail"}`)."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {detail}")
        self.status = status
        self.reason = reason  # the server's code
        self.detail = detail
