"""The validator's HTTP API (brief: `/v1/head`, `/v1/blocks/{height}`, `/v1/proofs/*`),
`/v1/chain` (NDJSON export) and the C2SP checkpoint and witness routes. Translates
`ChainQueries` and `CheckpointWitness` answers and errors, nothing more."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from services.validator.errors import (
    CheckpointUnavailableError,
    NoChainYetError,
    ProofRequestError,
    UnknownBlockError,
    UnknownEventError,
    UnknownOriginError,
)
from services.validator.queries import ChainQueries
from services.validator.witness import CheckpointWitness
from shared.checkpoint import CheckpointError, NoteFormatError
from shared.runtime.bounds import Count, stated_range
from shared.runtime.errors import ApiError
from shared.witness import (
    AddCheckpointRequestError,
    BadConsistencyProofError,
    ForkError,
    RollbackError,
    StaleSizeError,
)

NDJSON = "application/x-ndjson"
#: C2SP signed notes are served as UTF-8 text; tlog-witness's 409 body is a size.
NOTE = "text/plain; charset=utf-8"
SIZE = "text/x.tlog.size"


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

    @router.get(
        "/chain",
        response_class=StreamingResponse,
        responses={200: {"content": {NDJSON: {"schema": {"type": "string"}}}}},
    )
    def chain(
        first: Annotated[Count, Query(alias="from")] = 0,
        last: Annotated[Count | None, Query(alias="to")] = None,
    ) -> StreamingResponse:
        """The verified blocks `[from, to]` as NDJSON, one block per line, for export."""
        return StreamingResponse(queries.chain(first, last), media_type=NDJSON)

    return router


def checkpoint_router(queries: ChainQueries, witness: CheckpointWitness) -> APIRouter:
    """C2SP routes (ADR 0015): the final head as a tlog-checkpoint note, and the validator as
    a tlog-witness. Bodies are text, as those specs define them; errors other than the
    spec's 409 answer in the one error shape."""
    router = APIRouter(prefix="/v1", tags=["checkpoints"])

    @router.get("/checkpoint", response_class=PlainTextResponse)
    def checkpoint() -> Response:
        """The latest final head as a C2SP tlog-checkpoint signed note, with the note
        signatures of the genesis validators that attested it; 503 before finality."""
        try:
            note = queries.checkpoint()
        except CheckpointUnavailableError as exc:
            raise ApiError(503, "no_checkpoint", str(exc)) from exc
        return Response(content=note, media_type=NOTE)

    @router.post("/add-checkpoint", response_class=PlainTextResponse)
    async def add_checkpoint(request: Request) -> Response:
        """C2SP tlog-witness: `old <size>`, consistency proof lines, a blank line and a
        checkpoint note of a known origin; answers this witness's cosignature line."""
        body = await request.body()
        try:
            line = await run_in_threadpool(witness.add_checkpoint, body)
        except (AddCheckpointRequestError, NoteFormatError) as exc:
            raise ApiError(400, "malformed", str(exc)) from exc
        except UnknownOriginError as exc:
            raise ApiError(404, "unknown_origin", str(exc)) from exc
        except CheckpointError as exc:
            raise ApiError(403, "bad_signatures", exc.message, exc.evidence()) from exc
        except (StaleSizeError, ForkError) as exc:
            # The spec's answer: the size the witness holds, as text/x.tlog.size.
            # Exactly this type: Starlette would add a charset to a `media_type` of text.
            return Response(
                content=f"{exc.known_size}\n", status_code=409, headers={"Content-Type": SIZE}
            )
        except RollbackError as exc:
            raise ApiError(400, exc.reason, exc.message, {"known_size": exc.known_size}) from exc
        except BadConsistencyProofError as exc:
            raise ApiError(422, exc.reason, exc.message, {"known_size": exc.known_size}) from exc
        return Response(content=line, media_type=NOTE)

    return router
