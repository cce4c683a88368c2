"""The one error shape of every CareLedger API: `{"reason": ..., "detail": ..., **extra}`.

Request validation errors keep only where and what (`loc`, `msg`, `type`): FastAPI would also
echo the offending `input` (and `ctx`), which may be PHI, back into responses and logs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from shared.errors import CareLedgerError

__all__ = [
    "ERROR_SCHEMA",
    "REASON_PATTERN",
    "ApiError",
    "describe_errors",
    "error_body",
    "error_response",
    "install_error_handlers",
    "quotes_input",
    "send_error",
]

#: Every `reason` is snake_case.
REASON_PATTERN: Final = r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$"
#: The error shape in an OpenAPI document (`#/components/schemas/Error`).
ERROR_SCHEMA: Final[dict[str, Any]] = {
    "title": "Error",
    "type": "object",
    "required": ["reason", "detail"],
    "properties": {
        "reason": {"type": "string", "pattern": REASON_PATTERN},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
    },
}
_VALIDATION_ERROR_SCHEMA: Final[dict[str, Any]] = {
    "title": "ValidationError",
    "type": "object",
    "required": ["loc", "msg", "type"],
    "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"type": "string"},
        "type": {"type": "string"},
    },
}
_FASTAPI_ERROR: Final = "#/components/schemas/HTTPValidationError"
_ERROR: Final = "#/components/schemas/Error"


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


async def send_error(send: Send, error: ApiError, *, close: bool = False) -> None:
    """Answer `error` in the one shape straight from ASGI middleware, before any route (and
    the exception handlers) runs; with `close`, the connection is closed after it (the rest
    of a refused body is not read)."""
    body = json.dumps(error_body(error.reason, error.detail, error.extra)).encode()
    extra = error.headers.items()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra),
        *([(b"connection", b"close")] if close else []),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
    if quotes_input(msg, error.get("input")):
        msg = "the value is not valid here"
    return {"loc": loc, "msg": msg, "type": str(error["type"])}


def quotes_input(
    msg: str, value: object, *, window: int = 6, own_words: frozenset[str] = frozenset()
) -> bool:
    """Whether `msg` contains any `window` consecutive characters of a string in `value`
    (member names included; `own_words`, the API's own vocabulary, excepted). Iterative: a
    value may nest as deep as the request limit allows."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend(part for pair in item.items() for part in pair)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str) and item not in own_words and _quoted(msg, item, window):
            return True
    return False


def _quoted(msg: str, value: str, window: int) -> bool:
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


def describe_errors(app: FastAPI) -> None:
    """Make `app`'s OpenAPI document state the error shape its routes really answer.

    FastAPI declares every 422 as its own `HTTPValidationError` (`detail` a list, each item
    with the `input` and `ctx` this module never sends); generated clients and fuzzers would
    read the real `{"reason", "detail", "errors"}` body as a violation. The document is
    rewritten once, when it is first generated.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Error"] = ERROR_SCHEMA
        schemas.setdefault("ValidationError", _VALIDATION_ERROR_SCHEMA)
        if schemas.pop("HTTPValidationError", None) is not None:
            _replace_refs(document, _FASTAPI_ERROR, _ERROR)
        validation = schemas["ValidationError"].get("properties", {})
        validation.pop("input", None)
        validation.pop("ctx", None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _replace_refs(document: dict[str, Any], old: str, new: str) -> None:
    """Point every `$ref` to `old` in `document` at `new` (iteratively: documents nest)."""
    stack: list[Any] = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("$ref") == old:
                item["$ref"] = new
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def error_response(description: str) -> dict[str, Any]:
    """An OpenAPI response in the error shape, for a route's `responses`."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _ERROR}}},
    }
