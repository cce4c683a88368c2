"""What the SDK's clients share: `with` closes them, and an HTTP client they may own."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx

__all__ = ["Closing", "HttpBacked"]


class Closing:
    """`with client:` calls `client.close()` at the end of the block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class HttpBacked(Closing):
    """A client over `httpx`: the one given (left open by `close`), or its own."""

    def __init__(self, http: httpx.Client | None, *, timeout: float) -> None:
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
