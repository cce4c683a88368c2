"""Storage failures answered as 503 `store_unavailable` with Retry-After, in one place.

A write that hits a full disk, a read-only file or a PostgreSQL server that is gone is not the
caller's fault and not a bug: it is answered 503 in the one error shape, with the kind of
failure and no SQL, so clients retry and alerts fire (careledger_store_errors_total). Any
other database error stays a 500: it is a bug.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared.runtime.errors import error_body
from shared.store.availability import WriteSlotTimeoutError, unavailable_kind

__all__ = ["STORE_RETRY_AFTER_SECONDS", "install_store_unavailable_handler"]

#: What a 503 `store_unavailable` asks the caller to wait before retrying.
STORE_RETRY_AFTER_SECONDS: Final = 5


def install_store_unavailable_handler(app: FastAPI) -> None:
    """Answer storage failures (`shared.store.availability.unavailable_kind`) 503."""

    async def store_unavailable(_: Request, exc: Exception) -> JSONResponse:
        kind = unavailable_kind(exc)
        if kind is None:  # a database error that is a bug: the server's 500, as before
            raise exc
        return JSONResponse(
            error_body(
                "store_unavailable",
                f"the service's store cannot be used now ({kind}); retry later",
                {"store": kind},
            ),
            status_code=503,
            headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
        )

    for error in (DBAPIError, PoolTimeoutError, WriteSlotTimeoutError):
        app.add_exception_handler(error, store_unavailable)
