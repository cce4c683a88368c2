"""Limits on request bodies for every service's API: size (chunked uploads included) and
JSON nesting depth.

A declared `Content-Length` over the limit is refused before anything is read; a body without
one (chunked transfer encoding) is counted as it arrives and refused as soon as it passes the
limit, so no request can make a service buffer more than the limit. A JSON body (by its
Content-Type, or none) nested deeper than the depth limit is refused before any route parses
it (shared/runtime/depth.py). Pure ASGI, around the FastAPI app.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.runtime.depth import DEFAULT_MAX_REQUEST_DEPTH, is_json_media_type, json_depth_exceeds
from shared.runtime.errors import ApiError, send_error

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "DEFAULT_MAX_REQUEST_DEPTH", "BodyLimit"]

DEFAULT_MAX_REQUEST_BYTES: Final = 1024 * 1024


class BodyLimit:
    """ASGI middleware answering 413 `too_large` to a body longer than `max_bytes`, and 400
    `too_deep` to a JSON body nested deeper than `max_depth` levels of objects and arrays."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_depth: int = DEFAULT_MAX_REQUEST_DEPTH
    ) -> None:
        self._app = app
        self._max = max_bytes
        self._max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self._max:
            await self._refuse_size(send)
            return
        # Read the whole body first (at most the limit), then hand it on in one message: an
        # error raised from inside the app's own body parsing would be turned into a 400.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                await self._refuse_size(send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        if is_json_media_type(_header(scope, b"content-type")) and json_depth_exceeds(
            body, self._max_depth
        ):
            detail = f"a JSON body nests at most {self._max_depth} levels of objects and arrays"
            await send_error(send, ApiError(400, "too_deep", detail), close=True)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self._app(scope, replay, send)

    async def _refuse_size(self, send: Send) -> None:
        detail = f"a request body is at most {self._max} bytes"
        await send_error(send, ApiError(413, "too_large", detail), close=True)


def _header(scope: Scope, wanted: bytes) -> str | None:
    headers: Any = scope.get("headers", [])
    for name, value in headers:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _content_length(scope: Scope) -> int | None:
    text = _header(scope, b"content-length")
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None
