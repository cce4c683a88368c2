"""The one error shape of every CareLedger API: `{"reason": ..., "detail": ..., **extra}`.

Request validation errors keep only where and what (`loc`, `msg`, `type`): FastAPI would also
echo the offending `input` (and `ctx`), which may be PHI, back into responses and logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import CareLedgerError

__all__ = ["ApiError", "error_body", "install_error_handlers"]


class ApiError(CareLedgerError):
    """An HTTP error with a machine-readable `reason` (snake_case) and a human `detail`.

    Raise it from routes and dependencies; `extra` adds members to the body, `headers` to
    the response (e.g. WWW-Authenticate).
    """

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        extra: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        if not 400 <= status <= 599:
            raise ValueError(f"an API error has a 4xx or 5xx status, not {status}")
        self.status = status
        self.reason = reason
        self.detail = detail
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


def error_body(reason: str, detail: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The uniform body; `reason` and `detail` win over members of `extra` of the same name."""
    return {**(extra or {}), "reason": reason, "detail": detail}


#: What an unknown member's name is shown as.
REDACTED = "<redacted>"


def install_error_handlers(app: FastAPI) -> None:
    """Render ApiError, HTTPException and request validation errors in the uniform shape."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, ApiError):  # registered for this type only
            raise exc
        return JSONResponse(
            error_body(exc.reason, exc.detail, exc.extra),
            status_code=exc.status,
            headers=exc.headers or None,
        )

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, StarletteHTTPException):  # registered for this type only
            raise exc
        return JSONResponse(
            error_body(_status_reason(exc.status_code), str(exc.detail)),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RequestValidationError):  # registered for this type only
            raise exc
        errors = [_safe_error(error) for error in exc.errors()]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return JSONResponse(
            error_body("invalid_request", detail or "the request is invalid", {"errors": errors}),
            status_code=422,
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)


def _safe_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """Only loc/msg/type, and none of them repeating what the caller sent (it may be PHI):
    input and ctx are dropped, an unknown member's name is not shown, and a message that
    quotes any part of the input (custom validators do) is replaced by a generic one."""
    loc = [str(part) if not isinstance(part, int) else part for part in error["loc"]]
    if error["type"] == "extra_forbidden" and loc:
        loc[-1] = REDACTED
    msg = str(error["msg"])
    if _quotes_input(msg, error.get("input")):
        msg = "the value is not valid here"
    return {"loc": loc, "msg": msg, "type": str(error["type"])}


def _quotes_input(msg: str, value: object, *, window: int = 6) -> bool:
    """Whether `msg` contains any `window` consecutive characters of a string in `value`."""
    if isinstance(value, Mapping):
        return any(_quotes_input(msg, item) for pair in value.items() for item in pair)
    if isinstance(value, list | tuple):
        return any(_quotes_input(msg, item) for item in value)
    if not isinstance(value, str):
        return False
    text = value[:4096]
    if len(text) < window:
        return len(text) >= 3 and text in msg
    return any(text[i : i + window] in msg for i in range(len(text) - window + 1))


def _status_reason(status: int) -> str:
    """404 -> "not_found": the HTTP phrase as a snake_case reason."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"http_{status}"
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")
