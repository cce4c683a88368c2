"""Errors of the billing service: each carries the `reason` code its HTTP answer shows."""

from __future__ import annotations

from typing import ClassVar

from shared.errors import CareLedgerError


class BillingError(CareLedgerError):
    """Base class of the billing service's deliberate errors."""


class RequestError(BillingError):
    """A request the API refuses: the `reason` code and the detail of its HTTP answer."""

    reason: ClassVar[str] = "billing_error"


class ForbiddenError(RequestError):
    """The caller is authenticated but may not do this (HTTP 403)."""

    reason = "forbidden"


class NotFoundError(RequestError):
    """No such invoice or contract, or none the caller may know of (HTTP 404)."""

    reason = "not_found"


class ConflictError(RequestError):
    """The change contradicts the current state: a contract version already deployed, an
    idempotency key reused for a different payment, a voided invoice (HTTP 409)."""

    reason = "conflict"


class InvalidRequestError(RequestError):
    """Well-formed JSON that cannot be acted on: an invalid contract, a payment in another
    currency (HTTP 422)."""

    reason = "invalid_request"
