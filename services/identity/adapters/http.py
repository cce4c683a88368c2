"""The identity service's HTTP API (docs/identity-api.md): translate requests to use cases.

Every route needs a bearer token (`shared.runtime.auth`); errors take the one shape
`{"reason", "detail"}` (`shared.runtime.errors`). No rule lives here: the use cases decide,
this module only maps their outcomes and errors to status codes.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time, and
# `CallerOf` below is local to `identity_router`.
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from services.identity.errors import (
    ForbiddenError,
    IdentityError,
    InvalidRequestError,
    NotFoundError,
    RevokedDidError,
)
from services.identity.service import IdentityService, Outcome
from shared.credentials import CredentialError
from shared.events import DidKey, HexDigest
from shared.events.identity import AuthorityRegistered, PublisherGrant
from shared.runtime.auth import Authenticator, Caller
from shared.runtime.errors import ApiError

__all__ = ["identity_router"]

_STATUS: Final[dict[type[IdentityError], int]] = {
    ForbiddenError: 403,
    NotFoundError: 404,
    RevokedDidError: 409,
    InvalidRequestError: 422,
}
_DID: Final = TypeAdapter(DidKey)


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CredentialRequest(_Request):
    """A practitioner credential, whole (a W3C VC 2.0 JSON object with its proof)."""

    credential: dict[str, Any]


class RevocationRequest(_Request):
    """The credential to revoke: its digest (hex SHA-256 of its RFC 8785 bytes), or itself."""

    credential: HexDigest | dict[str, Any]


class PatientRequest(_Request):
    """Self-registration carries nothing: the patient is the token's signer."""


def identity_router(service: IdentityService[Any], authenticate: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["identity"])
    CallerOf = Annotated[Caller, Depends(authenticate)]  # noqa: N806 - a type alias

    @router.post("/authorities", status_code=201)
    def register_authority(body: AuthorityRegistered, caller: CallerOf) -> JSONResponse:
        """Admin: trust a licensing authority's credentials (once the change is sealed)."""
        with _answers():
            return _respond(service.register_authority(caller.did, did=body.did, name=body.name))

    @router.post("/publishers", status_code=201)
    def register_publisher(body: PublisherGrant, caller: CallerOf) -> JSONResponse:
        """Admin: let a platform's key publish these types on this topic."""
        with _answers():
            outcome = service.register_publisher(
                caller.did, did=body.did, name=body.name, topic=body.topic, types=body.types
            )
            return _respond(outcome)

    @router.post("/publishers/{did}/revoke", status_code=201)
    def revoke_publisher(did: str, caller: CallerOf) -> JSONResponse:
        """Admin: revoke a publisher's key for good."""
        with _answers():
            return _respond(service.revoke_publisher(caller.did, did=_did(did)))

    @router.post("/practitioners", status_code=201)
    def register_practitioner(body: CredentialRequest, caller: CallerOf) -> JSONResponse:
        """The credential's subject, its issuer or the admin: register a licensed practitioner."""
        with _answers():
            return _respond(service.register_practitioner(caller.did, body.credential))

    @router.post("/credentials/revoke", status_code=201)
    def revoke_credential(body: RevocationRequest, caller: CallerOf) -> JSONResponse:
        """The issuing authority: revoke a registered practitioner credential."""
        with _answers():
            return _respond(service.revoke_credential(caller.did, body.credential))

    @router.post("/credentials/verify")
    def verify_credential(body: CredentialRequest, caller: CallerOf) -> dict[str, Any]:
        """Anyone authenticated: every check of a credential, passed or failed (always 200)."""
        del caller  # authentication is the only requirement
        with _answers():
            return service.verify_credential(body.credential)

    @router.post("/patients", status_code=201)
    def register_patient(
        caller: CallerOf, body: Annotated[PatientRequest | None, Body()] = None
    ) -> JSONResponse:
        """A patient registers themselves; the answer holds their pseudonym."""
        del body  # nothing to read: only its shape is checked
        with _answers():
            return _respond(service.register_patient(caller.did))

    @router.get("/dids/{did}")
    def describe(did: str, caller: CallerOf) -> dict[str, Any]:
        """A DID's roles and their standing (a patient only to themselves and the admin)."""
        with _answers():
            return service.describe(caller.did, _did(did))

    return router


def _respond(outcome: Outcome) -> JSONResponse:
    return JSONResponse(outcome.body, status_code=201 if outcome.created else 200)


def _did(text: str) -> str:
    try:
        return _DID.validate_python(text)
    except ValidationError:
        raise InvalidRequestError("the path does not name a valid did:key") from None


@contextmanager
def _answers() -> Iterator[None]:
    """The use cases' deliberate errors as API errors; anything else is a bug (500)."""
    try:
        yield
    except CredentialError as exc:
        raise ApiError(422, exc.reason.value, exc.message) from exc
    except IdentityError as exc:
        raise ApiError(_STATUS.get(type(exc), 400), exc.reason, exc.detail) from exc
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ApiError(422, "invalid_request", f"{where}: {problem['msg']}") from exc
