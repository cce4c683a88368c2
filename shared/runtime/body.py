"""A limit on request bodies for every service's API, chunked uploads included.

A declared `Content-Length` over the limit is refused before anything is read; a body without
one (chunked transfer encoding) is counted as it arrives and refused as soon as it passes the
limit, so no request can make a service buffer more than the limit. Pure ASGI, around the
FastAPI app.
"""

from __future__ import annotations

import json
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "BodyLimit"]

DEFAULT_MAX_REQUEST_BYTES: Final = 1024 * 1024


class BodyLimit:
    """ASGI middleware answering 413 `too_large` to a body longer than `max_bytes`."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self._max:
            await self._refuse(send)
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
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self._app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"reason": "too_large", "detail": f"a request body is at most {self._max} bytes"}
        ).encode()
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    headers: Any = scope.get("headers", [])
    for name, value in headers:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
