"""The ledger explorer's static files (docs/explorer.md), served as shipped: no build step.

Only the files present in `static/` when the router is built are served, by name, so no
request path reaches the file system. The content security policy allows this origin only:
the explorer loads nothing from anywhere else and talks to no other server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response

STATIC: Final = Path(__file__).with_name("static")
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def explorer_router() -> APIRouter:
    """`/explorer/` and its files, outside the OpenAPI document (they are not the API)."""
    files = {
        path.name: (path.read_bytes(), _TYPES[path.suffix])
        for path in sorted(STATIC.iterdir())
        if path.suffix in _TYPES
    }
    router = APIRouter(prefix="/explorer", include_in_schema=False)

    @router.get("")
    def root() -> RedirectResponse:
        return RedirectResponse("/explorer/")

    @router.get("/{name}")
    @router.get("/", name="index")
    def static(name: str = "index.html") -> Response:
        found = files.get(name)
        if found is None:
            raise HTTPException(status_code=404, detail="no such explorer file")
        content, media_type = found
        headers = {"Content-Security-Policy": _POLICY, "X-Content-Type-Options": "nosniff"}
        return Response(content=content, media_type=media_type, headers=headers)

    return router
