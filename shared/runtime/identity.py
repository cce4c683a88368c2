"""Start-up identity: the service's own key and the genesis that must name it."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from shared.crypto import SigningKey
from shared.errors import CareLedgerError
from shared.genesis import GenesisConfig
from shared.keystore import read_genesis_file, read_key_file
from shared.runtime.settings import ServiceSettings


class StartupError(CareLedgerError):
    """The service cannot start with this configuration; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    key: SigningKey
    genesis_event: dict[str, Any]
    genesis: GenesisConfig

    def about(self) -> dict[str, str]:
        """Public facts for /healthz: who we are and which chain we serve."""
        return {"did": self.key.did, "chain_id": self.genesis.chain_id}


def load_identity(
    settings: ServiceSettings, *, role: str, dids: Callable[[GenesisConfig], Collection[str]]
) -> ServiceIdentity:
    """Read the key and genesis files; refuse to start if genesis does not give us this role."""
    key = read_key_file(settings.resolved_key_file)
    event, genesis = read_genesis_file(settings.resolved_genesis_file)
    if key.did not in dids(genesis):
        raise StartupError(
            f"{settings.instance_name}: key {key.did} ({settings.resolved_key_file}) is not "
            f"the {role} named in genesis {settings.resolved_genesis_file}"
        )
    return ServiceIdentity(key=key, genesis_event=event, genesis=genesis)
