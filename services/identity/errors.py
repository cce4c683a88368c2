"""Errors of the identity service: each carries the `reason` code its HTTP answer shows."""

from __future__ import annotations

from typing import ClassVar

from shared.errors import CareLedgerError


class IdentityError(CareLedgerError):
    """Base class of the identity service's deliberate errors."""

    reason: ClassVar[str] = "identity_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ForbiddenError(IdentityError):
    """The caller is authenticated but may not do this (HTTP 403)."""

    reason = "forbidden"


class NotFoundError(IdentityError):
    """No such DID or credential, or none the caller may see (HTTP 404)."""

    reason = "not_found"


class RevokedDidError(IdentityError):
    """A revoked publisher DID cannot be registered again (HTTP 409): the platform registers
    a new key instead."""

    reason = "revoked_did"


class InvalidRequestError(IdentityError):
    """The request is well-formed JSON but cannot be acted on (HTTP 422)."""

    reason = "invalid_request"
