"""The validator's HTTP API (brief: `/v1/head`, `/v1/blocks/{height}`, `/v1/proofs/*`) and
`/v1/chain` (NDJSON export). Translates `ChainQueries` answers and errors, nothing more."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response, StreamingResponse

from services.validator.errors import (
    NoChainYetError,
    ProofRequestError,
    UnknownBlockError,
    UnknownEventError,
)
from services.validator.queries import ChainQueries
from shared.runtime.bounds import Count, stated_range

NDJSON = "application/x-ndjson"


def validator_router(queries: ChainQueries) -> APIRouter:
    """The `/v1` routes over one validator's store. Handlers are sync: FastAPI runs them in
    its thread pool, so store reads never block the event loop."""
    router = APIRouter(prefix="/v1", tags=["validator"])

    @router.get("/head")
    def head() -> dict[str, Any]:
        """The last verified block, the highest final height, attestations, any fault."""
        try:
            return queries.head()
        except NoChainYetError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc

    @router.get("/blocks")
    def blocks(
        first: Annotated[Count, Query(alias="from")] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> list[dict[str, Any]]:
        """Up to `limit` blocks from height `from`, ascending, headers only (no events)."""
        return queries.headers(first, limit)

    @router.get("/genesis")
    def genesis() -> dict[str, Any]:
        """The genesis event of block 0; 503 before genesis."""
        try:
            return queries.genesis()
        except NoChainYetError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc

    @router.get("/blocks/{height}")
    def block(
        height: Annotated[int, Path(json_schema_extra=stated_range())],
    ) -> Response:
        """A verified block with the attestations collected for it; 404 for a height never
        verified, and for one that cannot exist (below 0, beyond 2**63 - 1)."""
        try:
            return Response(content=queries.block(height), media_type="application/json")
        except UnknownBlockError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc

    @router.get("/proofs/inclusion")
    def inclusion(
        source: str,
        event_id: Annotated[str, Query(alias="id")],
        tree_size: Annotated[int | None, Query(json_schema_extra=stated_range(1))] = None,
    ) -> dict[str, Any]:
        """RFC 9162 inclusion proof of the event `(source, id)` in the tree of `tree_size`."""
        try:
            return queries.inclusion(source, event_id, tree_size)
        except UnknownEventError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except (ProofRequestError, NoChainYetError) as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc

    @router.get("/proofs/consistency")
    def consistency(
        first: Annotated[int, Query(json_schema_extra=stated_range(1))],
        second: Annotated[int, Query(json_schema_extra=stated_range(1))],
    ) -> dict[str, Any]:
        """RFC 9162 consistency proof between two tree sizes of this validator's log."""
        try:
            return queries.consistency(first, second)
        except (ProofRequestError, NoChainYetError) as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc

    @router.get("/evidence")
    def evidence(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        """Refused blocks kept as evidence, newest first: the reason, the verifier's evidence,
        and the bytes received (base64url; for an equivocation also the stored block)."""
        return queries.evidence(limit)

    @router.get("/chain")
    def chain(
        first: Annotated[Count, Query(alias="from")] = 0,
        last: Annotated[Count | None, Query(alias="to")] = None,
    ) -> StreamingResponse:
        """The verified blocks `[from, to]` as NDJSON, one block per line, for export."""
        return StreamingResponse(queries.chain(first, last), media_type=NDJSON)

    return router
