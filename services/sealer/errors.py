"""Errors of the sealer service."""

from __future__ import annotations

from shared.errors import CareLedgerError


class SealerError(CareLedgerError):
    """Base class of the sealer service's deliberate errors."""
