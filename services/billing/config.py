"""Settings of the billing service (env prefix CARELEDGER_)."""

from __future__ import annotations

from typing import ClassVar

from shared.runtime.settings import PseudonymizingSettings


class BillingSettings(PseudonymizingSettings):
    """Billing computes patient pseudonyms too: a patient's token names their DID, and the
    invoices name the pseudonym the consultation carried."""

    service_name: ClassVar[str] = "billing"
    default_port: ClassVar[int] = 8103
