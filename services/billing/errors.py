"""Errors of the billing service."""

from __future__ import annotations

from shared.errors import CareLedgerError


class BillingError(CareLedgerError):
    """Base class of the billing service's deliberate errors."""
