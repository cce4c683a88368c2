"""The integers a client may send to a CareLedger API, bounded at the edge (issue 21).

Every integer in a path, a query or a body is bounded before it reaches a use case or a
store, and the bound is stated in the OpenAPI document (`minimum`, `maximum`) so generated
clients and fuzzers know it. Unbounded, a height of 2**63 reached the SQLite/PostgreSQL
driver, which binds at most a signed 64-bit integer, and answered 500.

Two ranges:

- **Path and query integers** (heights, tree sizes, offsets, versions) are at most
  `INT64_MAX`, the largest integer a store binds.
- **Body integers** (amounts, versions in a JSON body) are at most `MAX_SAFE_INTEGER`
  (2**53 - 1): a body is JSON that may be hashed or signed, RFC 8785 has no form for a larger
  integer, and only these are exact in the OpenAPI document itself (FastAPI writes a body
  schema's bounds as JSON floats).

Two ways to hold a bound:

- The `Annotated` types here are validated by FastAPI/pydantic: out of range is the API's
  request-validation error, 422 `invalid_request`, naming the parameter.
- `stated_range` only *states* the range in the OpenAPI schema, for a parameter whose route
  already answers an impossible value with a status of its own (a block height that cannot
  exist is 404 like any unknown height; a tree size out of range is 400 like any size beyond
  the head). Its use case checks the range with `within`, so nothing reaches a store unbound.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import Field

from shared.canonical import MAX_SAFE_INTEGER

__all__ = [
    "INT64_MAX",
    "MAX_SAFE_INTEGER",
    "Count",
    "Ordinal",
    "SafeOrdinal",
    "stated_range",
    "within",
]

#: The largest integer a store binds (SQLite INTEGER, PostgreSQL BIGINT): 2**63 - 1.
INT64_MAX: Final = 2**63 - 1

#: A path or query integer counted from 0: a height, a tree size, an offset.
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
#: A path or query integer counted from 1: a record version.
Ordinal = Annotated[int, Field(ge=1, le=INT64_MAX)]
#: A body integer counted from 1 (JSON-safe: see the module docstring).
SafeOrdinal = Annotated[int, Field(ge=1, le=MAX_SAFE_INTEGER)]


def stated_range(minimum: int = 0, maximum: int = INT64_MAX) -> dict[str, Any]:
    """The OpenAPI `minimum`/`maximum` of a parameter its use case checks with `within`
    (pass as `json_schema_extra` of `Path` or `Query`)."""
    return {"minimum": minimum, "maximum": maximum}


def within(value: int, minimum: int = 0, maximum: int = INT64_MAX) -> bool:
    """Whether `value` lies in the range `stated_range(minimum, maximum)` states."""
    return minimum <= value <= maximum
