"""Errors of the records service."""

from __future__ import annotations

from shared.errors import CareLedgerError


class RecordsError(CareLedgerError):
    """Base class of the records service's deliberate errors."""
