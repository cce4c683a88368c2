"""The DID directory: what a DID is on this chain, folded from genesis and the journal.

The journal is the identity service's own events, in the order it signed them, each with the
height of the block that sealed it once the chain shows it. The fold follows the same rules as
`shared.admission` (a revoked publisher DID stays revoked; a new credential replaces the
previous one; a revocation names the credential in force), so what `GET /v1/dids/{did}` shows is
what admission will decide once the events are sealed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.admission import registry_from_genesis
from shared.events import parse_timestamp
from shared.events.identity import (
    AUTHORITY_REGISTERED,
    PATIENT_REGISTERED,
    PRACTITIONER_REGISTERED,
    PRACTITIONER_REVOKED,
    PUBLISHER_REGISTERED,
    PUBLISHER_REVOKED,
)
from shared.genesis import GenesisConfig

__all__ = [
    "JournalEntry",
    "RoleStatus",
    "RoleView",
    "genesis_roles",
    "patient_roles",
    "roles_of",
]

PATIENT_ROLE = "patient"


class RoleStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"
    PENDING = "pending"  # accepted by the service, not sealed yet


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One event the identity service signed, and the height that sealed it (None: not yet)."""

    event_id: str
    type: str
    subject: str
    data: Mapping[str, Any]
    sealed_height: int | None = None

    @property
    def credential(self) -> str | None:
        """The credential digest of a practitioner event, else None."""
        value = self.data.get("credential")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class RoleView:
    """One role of one DID, as `GET /v1/dids/{did}` shows it."""

    role: str
    since_height: int | None
    until: int | None = None  # height of the block that sealed the revocation
    revoked: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    valid_until: datetime | None = None

    def status(self, now: datetime) -> RoleStatus:
        if self.revoked:
            return RoleStatus.REVOKED
        if self.valid_until is not None and now > self.valid_until:
            return RoleStatus.EXPIRED
        if self.since_height is None:
            return RoleStatus.PENDING
        return RoleStatus.ACTIVE

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "role": self.role,
            "status": self.status(now).value,
            "since_height": self.since_height,
            "until": self.until,
            **self.details,
        }


def genesis_roles(genesis: GenesisConfig, did: str) -> list[RoleView]:
    """The roles genesis gives `did` (sealed at height 0)."""
    views = []
    for role, standing in registry_from_genesis(genesis).roles_of(did).items():
        details: dict[str, Any] = {"name": standing.name} if standing.name else {}
        if standing.topic is not None:
            details |= {"topic": standing.topic, "types": list(standing.types)}
        views.append(RoleView(role=role.value, since_height=0, details=details))
    return views


def roles_of(genesis: GenesisConfig, did: str, journal: Iterable[JournalEntry]) -> list[RoleView]:
    """Every role of `did`: genesis first, then the journal entries about it, in order."""
    roles: dict[str, RoleView] = {view.role: view for view in genesis_roles(genesis, did)}
    for entry in journal:
        if entry.subject != did:
            continue
        _apply(roles, entry)
    return list(roles.values())


def patient_roles(journal: Sequence[JournalEntry], pseudonym: str) -> list[RoleView]:
    """The patient role of the DID whose pseudonym is `pseudonym`, if it registered."""
    for entry in journal:
        if entry.type == PATIENT_REGISTERED and entry.subject == pseudonym:
            view = RoleView(
                role=PATIENT_ROLE,
                since_height=entry.sealed_height,
                details={"pseudonym": pseudonym},
            )
            return [view]
    return []


def _apply(roles: dict[str, RoleView], entry: JournalEntry) -> None:
    data = entry.data
    if entry.type == AUTHORITY_REGISTERED and "authority" not in roles:
        roles["authority"] = RoleView(
            role="authority", since_height=entry.sealed_height, details={"name": data["name"]}
        )
    elif entry.type == PUBLISHER_REGISTERED:
        current = roles.get("publisher")
        if current is None or not current.revoked:
            roles["publisher"] = RoleView(
                role="publisher",
                since_height=entry.sealed_height,
                details={"name": data["name"], "topic": data["topic"], "types": data["types"]},
            )
    elif entry.type == PUBLISHER_REVOKED:
        _revoke(roles, "publisher", entry)
    elif entry.type == PRACTITIONER_REGISTERED:
        until = data.get("valid_until")
        roles["practitioner"] = RoleView(
            role="practitioner",
            since_height=entry.sealed_height,
            details={
                "issuer": data["issuer"],
                "credential": data["credential"],
                "practitioner_role": data["role"],  # "role" names the directory role
                "valid_from": data["valid_from"],
                "valid_until": until,
            },
            valid_until=None if until is None else parse_timestamp(until),
        )
    elif entry.type == PRACTITIONER_REVOKED:
        current = roles.get("practitioner")
        if current is not None and current.details.get("credential") == data["credential"]:
            _revoke(roles, "practitioner", entry)


def _revoke(roles: dict[str, RoleView], role: str, entry: JournalEntry) -> None:
    current = roles.get(role)
    if current is not None and not current.revoked:
        roles[role] = replace(current, revoked=True, until=entry.sealed_height)
