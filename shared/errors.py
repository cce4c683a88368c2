"""The error hierarchy of the common library: verification failures carry their evidence."""

from __future__ import annotations

from typing import Any


class CareLedgerError(Exception):
    """Base class of every error raised on purpose by CareLedger code."""


class VerificationError(CareLedgerError):
    """A verification failed. Carries the evidence: what was expected and what was computed.

    Verifiers never return a bool: they return nothing (or the verified value) or raise a
    subclass of this, so a caller cannot forget to look at the result.
    """

    def __init__(
        self,
        message: str,
        *,
        expected: Any = None,
        computed: Any = None,
        **context: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected
        self.computed = computed
        self.context = context

    def evidence(self) -> dict[str, Any]:
        """A JSON-friendly description of the failure, for logs, APIs and the CLI."""
        found: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        if self.expected is not None:
            found["expected"] = _printable(self.expected)
        if self.computed is not None:
            found["computed"] = _printable(self.computed)
        found.update({key: _printable(value) for key, value in self.context.items()})
        return found

    def __str__(self) -> str:
        parts = [self.message]
        if self.expected is not None or self.computed is not None:
            parts.append(
                f"expected {_printable(self.expected)!r}, computed {_printable(self.computed)!r}"
            )
        parts.extend(f"{key}={_printable(value)!r}" for key, value in self.context.items())
        return "; ".join(parts)


def _printable(value: Any) -> Any:
    """Bytes (hashes, signatures) are shown as hex; everything else as it is."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return value
