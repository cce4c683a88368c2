"""The records service's FHIR R4 REST face under `/fhir` (docs/fhir.md): translate FHIR
requests to `FhirFace` calls, and every error to an OperationOutcome. No rule lives here.

Authentication is the native API's (`shared.runtime.auth`), its refusal rendered as an
OperationOutcome. Bodies are parsed here rather than by FastAPI, so that even a body that is
not JSON is answered in FHIR's error shape.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.
import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.records.adapters.http import error_status
from services.records.core.fhir_rest import (
    AUDIT_TYPE,
    CONSENT_TYPE,
    MAX_COUNT,
    MAX_OFFSET,
    SearchQuery,
    operation_outcome,
    parse_search,
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
from services.records.fhir_face import FhirFace
from shared.runtime.auth import BEARER_SCHEME, Authenticator
from shared.runtime.bounds import stated_range
from shared.runtime.errors import ApiError, error_response

__all__ = ["FHIR_JSON", "fhir_router"]

FHIR_JSON: Final = "application/fhir+json"
_ACCEPTED: Final = frozenset({FHIR_JSON, "application/json"})
#: Deeper than any FHIR resource nests; checked before anything recurses over a body.
MAX_DEPTH: Final = 64
#: The FHIR issue type of each deliberate error, the most specific class first; its status
#: is the native API's (`error_status`).
_ISSUES: Final[tuple[tuple[type[RecordsError], str], ...]] = (
    (ForbiddenError, "forbidden"),
    (NotFoundError, "not-found"),
    (ConflictError, "conflict"),
    (ErasedError, "deleted"),
    (InvalidResourceError, "invalid"),
    (InvalidRequestError, "processing"),
    (IntegrityError, "exception"),
)
_SEARCH_PARAMETERS: Final = [
    {
        "name": "_count",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", **stated_range(1, MAX_COUNT)},
    },
    {
        "name": "_offset",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", **stated_range(0, MAX_OFFSET)},
    },
]


class _BadRequestError(Exception):
    """A request FHIR answers 400 (not JSON, a bad search parameter) or 415."""

    def __init__(self, detail: str, status: int = 400, reason: str = "invalid_request") -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


async def _body(request: Request) -> bytes:
    return await request.body()


class FhirResponse(JSONResponse):
    """What every FHIR answer is sent as (the OpenAPI document says so through it)."""

    media_type = FHIR_JSON


#: Every error is an OperationOutcome, but a body refused by the shared middleware before any
#: route (413 `too_large`, 400 `too_deep`) is in the native shape (docs/fhir.md).
_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    "4XX": {
        "description": "an OperationOutcome (docs/fhir.md)",
        "content": {
            FHIR_JSON: {
                "schema": {
                    "type": "object",
                    "required": ["resourceType", "issue"],
                    "properties": {
                        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
                        "issue": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                    },
                }
            }
        },
    },
    413: error_response("too_large: the body is over CARELEDGER_MAX_REQUEST_BYTES"),
}
#: A resource or a transaction Bundle, as the OpenAPI document states the body.
_RESOURCE_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            FHIR_JSON: {
                "schema": {
                    "type": "object",
                    "required": ["resourceType"],
                    "properties": {"resourceType": {"type": "string"}},
                }
            }
        },
    }
}


def fhir_router(face: FhirFace[Any], authenticate: Authenticator) -> APIRouter:
    # Each route authenticates in `answer` (its refusals are OperationOutcomes); the router's
    # dependency only declares the bearer scheme in the OpenAPI document (it never refuses).
    router = APIRouter(
        prefix="/fhir",
        tags=["fhir"],
        default_response_class=FhirResponse,
        responses=_RESPONSES,
        dependencies=[Security(BEARER_SCHEME)],
    )

    def answer(
        request: Request, act: Callable[[str], tuple[Any, int, Mapping[str, str]]]
    ) -> JSONResponse:
        """Authenticate, act, and render the result or the error as FHIR."""
        try:
            caller = authenticate(request).did
            content, status, headers = act(caller)
        except ApiError as exc:  # authentication
            return _outcome(exc.status, "login", exc.reason, exc.detail, headers=exc.headers)
        except _BadRequestError as exc:
            return _outcome(exc.status, "invalid", exc.reason, exc.detail)
        except RecordsError as exc:
            code = next(c for kind, c in _ISSUES if isinstance(exc, kind))
            status = error_status(exc)
            errors = exc.errors if isinstance(exc, InvalidResourceError) else ()
            return _outcome(status, code, exc.reason, exc.detail, errors)
        except ValidationError:
            # A value a use case's models refuse; their messages may quote it, so none shown.
            return _outcome(422, "invalid", "invalid_request", "the request is invalid")
        return JSONResponse(content, status_code=status, media_type=FHIR_JSON, headers=headers)

    @router.get("/metadata")
    def metadata(request: Request) -> JSONResponse:
        """The CapabilityStatement: exactly what this face supports."""
        return answer(request, lambda _: (face.capability(), 200, {}))

    @router.post("", openapi_extra=_RESOURCE_BODY)
    @router.post("/", include_in_schema=False)  # clients join the base and "" with a slash
    def transaction(request: Request, body: bytes = Depends(_body)) -> JSONResponse:
        """A transaction Bundle: every entry created, or none."""
        return answer(
            request, lambda caller: (face.transaction(caller, _json(request, body)), 200, {})
        )

    @router.get("/{resource_type}", openapi_extra={"parameters": _SEARCH_PARAMETERS})
    def search(resource_type: str, request: Request) -> JSONResponse:
        """Search: the records the caller may read (each read audited), their consents or
        their audit trail, as a searchset Bundle."""
        base = _base(request)

        def act(caller: str) -> tuple[Any, int, Mapping[str, str]]:
            query = _query(resource_type, request)
            if resource_type == CONSENT_TYPE:
                return face.consents(caller, query, base), 200, {}
            if resource_type == AUDIT_TYPE:
                return face.audit_events(caller, query, base), 200, {}
            return face.search(caller, query, base), 200, {}

        return answer(request, act)

    @router.post("/{resource_type}", openapi_extra=_RESOURCE_BODY)
    def create(resource_type: str, request: Request, body: bytes = Depends(_body)) -> JSONResponse:
        """Create a record (or grant a Consent): 201 with Location."""

        def act(caller: str) -> tuple[Any, int, Mapping[str, str]]:
            resource = _json(request, body)
            if resource_type == AUDIT_TYPE:
                raise _BadRequestError(
                    "the audit trail is written by the service, not by clients",
                    status=405,
                    reason="method_not_allowed",
                )
            if resource_type == CONSENT_TYPE:
                created, location = face.grant(caller, resource)
            else:
                created, location = face.create(caller, resource_type, resource)
            headers = {"Location": f"{_base(request)}/{location}"}
            if "versionId" in created.get("meta", {}):
                headers["ETag"] = f'W/"{created["meta"]["versionId"]}"'
            return created, 201, headers

        return answer(request, act)

    @router.get("/{resource_type}/{resource_id}")
    def read(resource_type: str, resource_id: str, request: Request) -> JSONResponse:
        """Read a record under consent (audited like a native read), or one's own Consent."""

        def act(caller: str) -> tuple[Any, int, Mapping[str, str]]:
            if resource_type == CONSENT_TYPE:
                return face.consent(caller, resource_id), 200, {}
            if resource_type == AUDIT_TYPE:
                return face.audit_event(caller, resource_id), 200, {}
            resource = face.read(caller, resource_type, resource_id)
            return resource, 200, _etag(resource)

        return answer(request, act)

    @router.get("/{resource_type}/{resource_id}/_history/{version_id}")
    def vread(
        resource_type: str, resource_id: str, version_id: str, request: Request
    ) -> JSONResponse:
        """Read one version of a record (versions are never overwritten)."""

        def act(caller: str) -> tuple[Any, int, Mapping[str, str]]:
            version = _version(version_id)
            resource = face.read(caller, resource_type, resource_id, version)
            return resource, 200, _etag(resource)

        return answer(request, act)

    return router


def _outcome(
    status: int,
    code: str,
    reason: str,
    detail: str,
    errors: Any = (),
    *,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        operation_outcome(code, reason, detail, errors),
        status_code=status,
        media_type=FHIR_JSON,
        headers=dict(headers or {}) or None,
    )


def _json(request: Request, body: bytes) -> Any:
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in _ACCEPTED:
        raise _BadRequestError(
            f"send the resource as {FHIR_JSON}", status=415, reason="unsupported_media_type"
        )
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise _BadRequestError("the body is not JSON") from None
    if _depth(value) > MAX_DEPTH:
        raise _BadRequestError(f"the body nests deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """How deep a JSON value nests, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack += [(member, depth + 1) for member in item.values()]
        elif isinstance(item, list):
            stack += [(member, depth + 1) for member in item]
    return deepest


def _query(resource_type: str, request: Request) -> SearchQuery:
    try:
        return parse_search(resource_type, list(request.query_params.multi_items()))
    except InvalidRequestError as exc:
        raise _BadRequestError(exc.detail) from None


def _version(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 18 and int(text) >= 1):
        raise NotFoundError("no such version")
    return int(text)


def _etag(resource: Mapping[str, Any]) -> dict[str, str]:
    return {"ETag": f'W/"{resource["meta"]["versionId"]}"'}


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/fhir"
