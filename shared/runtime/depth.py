"""How deeply a JSON request body nests, counted on its bytes before anything parses it.

Python's JSON reader, pydantic and the canonical encoder all recurse: a body of 100 000 `[`
was refused only because the reader hit the interpreter's recursion limit (a `RecursionError`
turned into 400 "error parsing the body"), and one just under that limit was parsed and then
walked recursively by every layer after it, at a depth that depends on the stack it runs on.
`BodyLimit` (shared/runtime/body.py) refuses a JSON body nested deeper than the service's
`CARELEDGER_MAX_REQUEST_DEPTH` with 400 `too_deep` before any of them sees it.

The count steps over string tokens whole (a bracket inside a string is text), so it is exact
for JSON; text that is not JSON gets some depth here and its verdict from the reader.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["DEFAULT_MAX_REQUEST_DEPTH", "is_json_media_type", "json_depth_exceeds"]

#: Far deeper than any CareLedger body (a FHIR resource nests about 10 levels, an event 32),
#: far shallower than any recursion limit.
DEFAULT_MAX_REQUEST_DEPTH: Final = 64

_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPENING: Final = frozenset({b"{", b"["})
_CLOSING: Final = frozenset({b"}", b"]"})


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the JSON text `body` nests objects and arrays deeper than `limit` levels.

    A body with no more opening brackets in all than the limit cannot be deeper: one C count
    decides nearly every request. Otherwise the structural brackets are followed."""
    if body.count(b"{") + body.count(b"[") <= limit:
        return False
    depth = 0
    for token in _TOKEN.finditer(body):
        text = token.group()
        if text in _OPENING:
            depth += 1
            if depth > limit:
                return True
        elif text in _CLOSING:
            depth -= 1
    return False


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a request of this Content-Type is read as JSON by some route: none at all
    (FastAPI then parses JSON), `application/json`, or any `application/*+json`."""
    if not content_type:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
