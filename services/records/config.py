"""Settings of the records service (env prefix CARELEDGER_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.runtime.settings import PseudonymizingSettings


class RecordsSettings(PseudonymizingSettings):
    service_name: ClassVar[str] = "records"
    default_port: ClassVar[int] = 8102

    #: The largest request body accepted (a FHIR resource with an attachment), in bytes.
    max_request_bytes: int = Field(default=1024 * 1024, ge=4096, le=16 * 1024 * 1024)
