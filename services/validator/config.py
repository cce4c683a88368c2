"""Settings of a validator (env prefix CARELEDGER_); several run side by side, one per name."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.runtime.settings import ServiceSettings

FIRST_PORT = 8110


class ValidatorSettings(ServiceSettings):
    service_name: ClassVar[str] = "validator"
    default_port: ClassVar[int] = FIRST_PORT + 1

    #: `validator-N`: names its key file, its store and (by default) its port 8110+N.
    validator_name: str = Field(default="validator-1", pattern=r"^validator-[1-9][0-9]{0,2}$")

    #: Re-verify the whole stored chain from genesis at start (detects an altered store;
    #: costs about as long as verifying the chain did, ~8,000 events/s on one core).
    audit_on_start: bool = True

    @property
    def instance_name(self) -> str:
        return self.validator_name

    @property
    def listen_port(self) -> int:
        return self.port or FIRST_PORT + int(self.validator_name.rsplit("-", 1)[1])
