"""Settings of the sealer service (env prefix CARELEDGER_)."""

from __future__ import annotations

from typing import ClassVar

from shared.runtime.settings import ServiceSettings


class SealerSettings(ServiceSettings):
    service_name: ClassVar[str] = "sealer"
    default_port: ClassVar[int] = 8104
