"""Settings of the identity service (env prefix CARELEDGER_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

from pydantic import model_validator

from shared.runtime.settings import ServiceSettings

PSEUDONYM_KEY_FILE = "pseudonym.key"


class IdentitySettings(ServiceSettings):
    service_name: ClassVar[str] = "identity"
    default_port: ClassVar[int] = 8101

    #: The secret key of patient pseudonyms (32 bytes, base64url; shared with records).
    pseudonym_key_file: Path | None = None

    @model_validator(mode="after")
    def _pseudonym_key_chosen_in_prod(self) -> Self:
        if self.env == "prod" and self.pseudonym_key_file is None:
            raise ValueError(
                "refusing to start in prod: CARELEDGER_PSEUDONYM_KEY_FILE must be set "
                "(the dev pseudonym key is for development)"
            )
        return self

    @property
    def resolved_pseudonym_key_file(self) -> Path:
        return self.pseudonym_key_file or self.data_dir / "keys" / PSEUDONYM_KEY_FILE
