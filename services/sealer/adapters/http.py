"""The sealer's HTTP ingest: `POST /v1/events`, CloudEvents HTTP binding, structured mode
(docs/client.md, ADR 0016). Authenticated by bearer token (`aud` = ``sealer``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.sealer.core.ingest import IngestRefusedError
from services.sealer.errors import IngestUnavailableError, TransientError
from services.sealer.ingest import EventIngest
from shared.envelope import MAX_EVENT_BYTES
from shared.runtime.auth import CurrentCaller
from shared.runtime.errors import ApiError

__all__ = ["ingest_router"]


def ingest_router(ingest: EventIngest) -> APIRouter:
    """The `/v1/events` route over one `EventIngest`."""
    router = APIRouter(prefix="/v1", tags=["ingest"])

    @router.post(
        "/events",
        status_code=202,
        responses={
            202: {"description": "queued durably; poll the Location for the receipt"},
            400: {"description": "malformed, bad_signature"},
            401: {"description": "no valid bearer token"},
            403: {"description": "not_signer, unknown_signer, revoked_signer, unauthorized_type"},
            409: {"description": "duplicate"},
            413: {"description": "too_large (over 64 KiB)"},
            415: {"description": "unsupported_media_type"},
            422: {"description": "unknown_topic"},
            503: {"description": "not_ready"},
        },
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
            raise ApiError(exc.status, exc.reason, exc.detail) from None
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
