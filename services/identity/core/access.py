"""Who may do what at the identity service: pure decisions from genesis and the journal."""

from __future__ import annotations

from collections.abc import Iterable

from services.identity.core.directory import JournalEntry
from services.identity.errors import ForbiddenError
from shared.events.identity import AUTHORITY_REGISTERED
from shared.genesis import GenesisConfig

__all__ = [
    "may_see_patient",
    "require_admin",
    "require_issuer",
    "require_practitioner_caller",
    "trusted_authorities",
]


def require_admin(genesis: GenesisConfig, caller: str, action: str) -> None:
    """Only the genesis admin may register authorities and publishers, or revoke publishers."""
    if caller != genesis.admin:
        raise ForbiddenError(f"only the admin named in genesis may {action}")


def trusted_authorities(genesis: GenesisConfig, journal: Iterable[JournalEntry]) -> frozenset[str]:
    """Genesis authorities, and registered ones once their registration is sealed.

    A registration that is not sealed yet does not count: its event and a practitioner's
    (keyed by another DID, so perhaps on another partition) could be sealed in either order,
    and admission ignores a practitioner whose issuer is not yet an authority.
    """
    registered = {
        str(entry.data["did"])
        for entry in journal
        if entry.type == AUTHORITY_REGISTERED and entry.sealed_height is not None
    }
    return frozenset(genesis.authorities) | registered


def require_practitioner_caller(
    genesis: GenesisConfig, caller: str, *, subject: str, issuer: str
) -> None:
    """A credential is presented by its subject, its issuer or the admin."""
    if caller not in {subject, issuer, genesis.admin}:
        raise ForbiddenError("a credential is registered by its subject, its issuer or the admin")


def require_issuer(caller: str, issuer: str) -> None:
    """Only the authority that issued a credential may revoke it."""
    if caller != issuer:
        raise ForbiddenError("only the authority that issued the credential may revoke it")


def may_see_patient(genesis: GenesisConfig, caller: str, did: str) -> bool:
    """A patient's registration is disclosed to the patient and the admin only."""
    return caller in {did, genesis.admin}
