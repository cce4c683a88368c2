"""Errors of the validator service."""

from __future__ import annotations

from shared.errors import CareLedgerError


class ValidatorError(CareLedgerError):
    """Base class of the validator service's deliberate errors."""
