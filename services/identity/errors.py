"""Errors of the identity service."""

from __future__ import annotations

from shared.errors import CareLedgerError


class IdentityError(CareLedgerError):
    """Base class of the identity service's deliberate errors."""
