"""Settings of the billing service (env prefix CARELEDGER_)."""

from __future__ import annotations

from typing import ClassVar

from shared.runtime.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    service_name: ClassVar[str] = "billing"
    default_port: ClassVar[int] = 8103
