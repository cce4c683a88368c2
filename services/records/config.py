"""Settings of the records service (env prefix CARELEDGER_)."""

from __future__ import annotations

from typing import ClassVar

from shared.runtime.settings import PseudonymizingSettings


class RecordsSettings(PseudonymizingSettings):
    service_name: ClassVar[str] = "records"
    default_port: ClassVar[int] = 8102
