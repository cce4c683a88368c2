"""Settings of the identity service (env prefix CARELEDGER_)."""

from __future__ import annotations

from typing import ClassVar

from shared.runtime.settings import PseudonymizingSettings


class IdentitySettings(PseudonymizingSettings):
    service_name: ClassVar[str] = "identity"
    default_port: ClassVar[int] = 8101
