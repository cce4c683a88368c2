"""Errors of the records service: each carries the `reason` code its HTTP answer shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from shared.errors import CareLedgerError


class RecordsError(CareLedgerError):
    """Base class of the records service's deliberate errors."""

    reason: ClassVar[str] = "records_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ForbiddenError(RecordsError):
    """The caller is authenticated but may not do this (HTTP 403)."""

    reason = "forbidden"


class ConsentRequiredError(ForbiddenError):
    """A read without the patient's consent (HTTP 403, audited as a denied read); a
    practitioner may still break the glass with a stated emergency reason."""

    reason = "consent_required"


class NotFoundError(RecordsError):
    """No such record or consent, or none the caller may know of (HTTP 404)."""

    reason = "not_found"


class ErasedError(RecordsError):
    """The record was crypto-shredded: it is gone for good (HTTP 410)."""

    reason = "erased"


class ConflictError(RecordsError):
    """The change contradicts the current state, e.g. an update based on an old version
    (HTTP 409)."""

    reason = "conflict"


class InvalidRequestError(RecordsError):
    """The request is well-formed JSON but cannot be acted on (HTTP 422)."""

    reason = "invalid_request"


class InvalidResourceError(InvalidRequestError):
    """The FHIR resource does not validate (HTTP 422, with the validation errors: where,
    what kind, and a message that never repeats the submitted values)."""

    reason = "invalid_resource"

    def __init__(self, detail: str, errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(detail)
        self.errors = list(errors)


class IntegrityError(RecordsError):
    """A stored record no longer matches what the chain holds (HTTP 500: it must not be
    served, and the operators must look)."""

    reason = "integrity_failure"
