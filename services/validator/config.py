"""Settings of a validator (env prefix CARELEDGER_); several run side by side, one per name."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from shared.checkpoint import check_origin
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

    #: The origin line of this chain's checkpoints (ADR 0015); the same on every validator of
    #: the chain. Default `careledger/<chain_id>`.
    checkpoint_origin: str | None = None

    #: Sign each block's checkpoint in our attestations. Off only while validators older
    #: than ADR 0015 still run: they refuse attestations with the extra member.
    checkpoint_cosign: bool = True

    #: Other CareLedger chains this validator witnesses: origin -> that chain's genesis file
    #: (JSON object in CARELEDGER_WITNESS_CHAINS). Its own chain is always witnessed.
    witness_chains: dict[str, Path] = Field(default_factory=dict)

    @field_validator("checkpoint_origin")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        return None if value is None else check_origin(value)

    @field_validator("witness_chains")
    @classmethod
    def _origins(cls, value: dict[str, Path]) -> dict[str, Path]:
        for origin in value:
            check_origin(origin)
        return value

    @property
    def instance_name(self) -> str:
        return self.validator_name

    @property
    def listen_port(self) -> int:
        return self.port or FIRST_PORT + int(self.validator_name.rsplit("-", 1)[1])
