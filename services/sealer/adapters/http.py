"""The sealer's HTTP ingest: `POST /v1/events`, CloudEvents HTTP binding, structured mode
(docs/client.md, ADR 0016). Authenticated by bearer token (`aud` = ``sealer``)."""

from __future__ import annotations

import json
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.sealer.core.ingest import IngestRefusedError
from services.sealer.errors import IngestUnavailableError, TransientError
from services.sealer.ingest import EventIngest
from shared.envelope import CONTENT_TYPE, MAX_EVENT_BYTES
from shared.runtime.auth import CurrentCaller
from shared.runtime.errors import ApiError, error_response, quotes_input

__all__ = ["ingest_router"]

#: The body as the OpenAPI document states it: the signed CloudEvent, structured mode (its
#: rules are the envelope's, docs/envelope.md; the route reads the bytes itself).
_EVENT_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {
        CONTENT_TYPE: {
            "schema": {
                "type": "object",
                "required": [
                    "specversion",
                    "id",
                    "source",
                    "type",
                    "time",
                    "datacontenttype",
                    "data",
                    "signer",
                    "signature",
                ],
                "properties": {
                    "specversion": {"type": "string", "enum": ["1.0"]},
                    "id": {"type": "string"},
                    "source": {"type": "string"},
                    "type": {"type": "string"},
                    "time": {"type": "string"},
                    "subject": {"type": "string"},
                    "datacontenttype": {"type": "string", "enum": ["application/json"]},
                    "data": {"type": "object"},
                    "signer": {"type": "string"},
                    "signature": {"type": "string"},
                },
            }
        }
    },
}


def ingest_router(ingest: EventIngest) -> APIRouter:
    """The `/v1/events` route over one `EventIngest`."""
    router = APIRouter(prefix="/v1", tags=["ingest"])

    @router.post(
        "/events",
        status_code=202,
        responses={
            202: {"description": "queued durably; poll the Location for the receipt"},
            400: error_response("malformed, bad_signature"),
            401: error_response("no valid bearer token"),
            403: error_response("not_signer, unknown_signer, revoked_signer, unauthorized_type"),
            409: error_response("duplicate"),
            413: error_response("too_large (over 64 KiB)"),
            415: error_response("unsupported_media_type"),
            422: error_response("unknown_topic"),
            503: error_response("not_ready"),
        },
        openapi_extra={"requestBody": _EVENT_BODY},
    )
    async def post_event(request: Request, caller: CurrentCaller) -> JSONResponse:
        """One signed CloudEvent as `application/cloudevents+json`, signed by the caller."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_EVENT_BYTES:
            # Refused on the header, before the body is read (the app-wide limit is larger).
            raise ApiError(413, "too_large", f"an event is at most {MAX_EVENT_BYTES} bytes")
        body = await request.body()
        try:
            receipt = await run_in_threadpool(
                ingest.accept,
                body,
                content_type=request.headers.get("content-type"),
                caller=caller.did,
            )
        except IngestRefusedError as exc:
            raise ApiError(exc.status, exc.reason, _unechoed(exc.detail, body)) from None
        except (IngestUnavailableError, TransientError) as exc:
            raise ApiError(503, "not_ready", str(exc), headers={"Retry-After": "1"}) from None
        return JSONResponse(
            {
                "status": "queued",
                "source": receipt.source,
                "id": receipt.id,
                "topic": receipt.topic,
                "receipt": receipt.location,
                "replayed": receipt.replayed,
            },
            status_code=202,
            headers={"Location": receipt.location},
        )

    return router


#: The envelope's own words, which a refusal may name ("member 'signature' must be ...").
_ENVELOPE_WORDS: Final = frozenset(_EVENT_BODY["content"][CONTENT_TYPE]["schema"]["properties"])


def _unechoed(detail: str, body: bytes) -> str:
    """`detail`, unless it repeats any text of the posted event other than the envelope's
    own member names: an answer never carries what the caller sent (it may be PHI), so the
    detail is then only the pointer to the rules (the reason code stays exact)."""
    try:
        posted = json.loads(body)
    except (ValueError, RecursionError):
        return detail  # not JSON: the refusal says so and quotes nothing of it
    if quotes_input(detail, posted, window=8, own_words=_ENVELOPE_WORDS):
        return "the event does not pass this check of the envelope (docs/envelope.md)"
    return detail
