"""The records service's HTTP API (docs/records-api.md): translate requests to use cases.

Every route needs a bearer token (`shared.runtime.auth`); errors take the one shape
`{"reason", "detail"}` (`shared.runtime.errors`), and an invalid FHIR resource adds `errors`
(where, what kind, never the submitted value). No rule lives here.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time, and
# `CallerOf` below is local to `records_router`.
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from services.records.errors import (
    ConflictError,
    ErasedError,
    ForbiddenError,
    IntegrityError,
    InvalidRequestError,
    InvalidResourceError,
    NotFoundError,
    RecordsError,
)
from services.records.reading import RecordReader
from services.records.service import RecordsService
from shared.events import DidKey
from shared.events.records import OpaqueId, Purpose, ResourceType
from shared.runtime.auth import Authenticator, Caller
from shared.runtime.bounds import Ordinal, SafeOrdinal
from shared.runtime.errors import ApiError

__all__ = ["error_status", "records_router"]

_STATUS: Final[dict[type[RecordsError], int]] = {
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    ErasedError: 410,
    InvalidRequestError: 422,
    IntegrityError: 500,
}
_DID: Final = TypeAdapter(DidKey)


def error_status(exc: RecordsError) -> int:
    """The HTTP status of a records use case's refusal, in the native API and the FHIR face."""
    return next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)


_ID: Final = TypeAdapter(OpaqueId)


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NewRecord(_Request):
    """A FHIR R4 resource for a registered patient (named by their DID)."""

    patient: DidKey
    resource: dict[str, Any]


class NewVersion(_Request):
    """The whole resource as it should now read; `base_version` guards against lost updates."""

    resource: dict[str, Any]
    base_version: SafeOrdinal | None = None


class BreakGlass(_Request):
    """Why the emergency justifies reading without consent (shown to the patient only)."""

    reason: StrictStr = Field(min_length=1, max_length=500)


class NewConsent(_Request):
    """Let `grantee` read the caller's records of these types (empty: all) until `expires`."""

    grantee: DidKey
    resource_types: tuple[ResourceType, ...] = Field(default=(), max_length=64)
    purpose: Purpose = Purpose.TREATMENT
    expires: AwareDatetime


def records_router(
    service: RecordsService[Any],
    reader: RecordReader[Any],
    authenticate: Authenticator,
) -> APIRouter:
    # Request bodies are limited for every service by `shared.runtime.body`.
    router = APIRouter(prefix="/v1", tags=["records"])
    CallerOf = Annotated[Caller, Depends(authenticate)]  # noqa: N806 - a type alias

    @router.post("/records", status_code=201)
    def create_record(body: NewRecord, caller: CallerOf) -> JSONResponse:
        """A registered practitioner writes a record for a registered patient."""
        with _answers():
            answer = service.create_record(caller.did, patient=body.patient, resource=body.resource)
            return JSONResponse(answer, status_code=201)

    @router.post("/records/{record_id}/versions", status_code=201)
    def update_record(record_id: str, body: NewVersion, caller: CallerOf) -> JSONResponse:
        """The author (or a practitioner with consent for treatment) adds a version."""
        with _answers():
            answer = service.update_record(
                caller.did, _id(record_id), resource=body.resource, base_version=body.base_version
            )
            return JSONResponse(answer, status_code=201)

    @router.get("/records/{record_id}")
    def read_record(
        record_id: str,
        caller: CallerOf,
        version: Annotated[Ordinal | None, Query()] = None,
        purpose: Purpose | None = None,
    ) -> dict[str, Any]:
        """Read a record under the patient's consent; refused reads are audited (403)."""
        with _answers():
            return reader.read(caller.did, _id(record_id), version=version, purpose=purpose)

    @router.post("/records/{record_id}/break-glass")
    def break_glass(record_id: str, body: BreakGlass, caller: CallerOf) -> dict[str, Any]:
        """A practitioner reads without consent in an emergency: flagged and audited."""
        with _answers():
            return reader.break_glass(caller.did, _id(record_id), reason=body.reason)

    @router.get("/records/{record_id}/envelope")
    def envelope(
        record_id: str,
        caller: CallerOf,
        version: Annotated[Ordinal | None, Query()] = None,
        purpose: Purpose | None = None,
    ) -> dict[str, Any]:
        """The encrypted version with the caller's wrapped key, to decrypt client-side."""
        with _answers():
            return reader.envelope(caller.did, _id(record_id), version=version, purpose=purpose)

    @router.post("/records/{record_id}/erase")
    def erase(record_id: str, caller: CallerOf) -> dict[str, Any]:
        """The patient or the admin crypto-shreds a record."""
        with _answers():
            return service.erase(caller.did, _id(record_id))

    @router.post("/consents", status_code=201)
    def grant_consent(body: NewConsent, caller: CallerOf) -> JSONResponse:
        """A patient grants a consent."""
        with _answers():
            answer = service.grant_consent(
                caller.did,
                grantee=body.grantee,
                resource_types=body.resource_types,
                purpose=body.purpose,
                expires=body.expires,
            )
            return JSONResponse(answer, status_code=201)

    @router.get("/consents")
    def list_consents(caller: CallerOf) -> dict[str, Any]:
        """The caller's consents as a patient."""
        with _answers():
            return reader.consents_of(caller.did)

    @router.delete("/consents/{consent_id}")
    def revoke_consent(consent_id: str, caller: CallerOf) -> dict[str, Any]:
        """The patient revokes a consent (again: no change)."""
        with _answers():
            _, answer = service.revoke_consent(caller.did, _id(consent_id))
            return answer

    @router.get("/patients/{did}/records")
    def patient_records(did: str, caller: CallerOf) -> dict[str, Any]:
        """The patient's records (no content)."""
        with _answers():
            return reader.records_of(caller.did, _did(did))

    @router.get("/patients/{did}/disclosures")
    def disclosures(did: str, caller: CallerOf) -> dict[str, Any]:
        """The patient's accounting of disclosures."""
        with _answers():
            return reader.disclosures(caller.did, _did(did))

    @router.get("/patients/{did}/export")
    def export(did: str, caller: CallerOf) -> dict[str, Any]:
        """A FHIR Bundle of the patient's readable records."""
        with _answers():
            return reader.export(caller.did, _did(did))

    return router


def _did(text: str) -> str:
    try:
        return _DID.validate_python(text)
    except ValidationError:
        raise InvalidRequestError("the path does not name a valid did:key") from None


def _id(text: str) -> str:
    try:
        return _ID.validate_python(text)
    except ValidationError:
        raise NotFoundError("no such record or consent") from None


@contextmanager
def _answers() -> Iterator[None]:
    """The use cases' deliberate errors as API errors; anything else is a bug (500)."""
    try:
        yield
    except InvalidResourceError as exc:
        errors = [_located(error) for error in exc.errors]
        raise ApiError(422, exc.reason, exc.detail, {"errors": errors}) from exc
    except RecordsError as exc:
        status = error_status(exc)
        raise ApiError(status, exc.reason, exc.detail) from exc
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ApiError(422, "invalid_request", f"{where}: {problem['msg']}") from exc


def _located(error: Mapping[str, Any]) -> dict[str, Any]:
    """A resource error with its `loc` as every API's errors have it: a list of member names
    and array indices (`"entry.0.active"` -> `["entry", 0, "active"]`), the FHIR face keeping
    the dotted text FHIR's `expression` uses."""
    parts = [part for part in str(error["loc"]).split(".") if part]
    return {**error, "loc": [int(part) if part.isdigit() else part for part in parts]}
