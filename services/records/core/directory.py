"""The records service's directory: practitioners, authorities and patients, from sealed
identity events, by exactly the rules of the admission registry.

The sealer's registry (`shared.admission`) decides who is a practitioner on the chain; this
module replays a followed block's identity events through the same `apply_sealed_event`, on a
registry holding only genesis and the stored standings of the DIDs the block touches, so the
records service can never disagree with admission about who is licensed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from services.records.core.model import Practitioner
from shared.admission import (
    Role,
    SignerRegistry,
    Standing,
    apply_sealed_event,
    registry_from_genesis,
)
from shared.envelope import parse_event_object
from shared.events.identity import (
    AUTHORITY_REGISTERED,
    PATIENT_REGISTERED,
    PRACTITIONER_REGISTERED,
    PRACTITIONER_REVOKED,
    PatientRegistered,
)
from shared.follower import SealedEvent
from shared.genesis import GenesisConfig

__all__ = ["DirectoryChange", "follow_identity", "touched_dids"]

_DIRECTORY_TYPES = frozenset(
    {AUTHORITY_REGISTERED, PATIENT_REGISTERED, PRACTITIONER_REGISTERED, PRACTITIONER_REVOKED}
)


@dataclass(frozen=True, slots=True)
class DirectoryChange:
    """What one block changed: practitioner standings, new authorities and patients (by
    height)."""

    practitioners: tuple[Practitioner, ...] = ()
    authorities: Mapping[str, int] = field(default_factory=dict)
    patients: Mapping[str, int] = field(default_factory=dict)


def _identity_events(events: Sequence[SealedEvent], identity: str) -> list[SealedEvent]:
    return [e for e in events if e.signer == identity and e.type in _DIRECTORY_TYPES]


def touched_dids(events: Sequence[SealedEvent], genesis: GenesisConfig) -> set[str]:
    """The DIDs whose stored standing `follow_identity` needs: practitioners and issuers."""
    dids: set[str] = set()
    for event in _identity_events(events, genesis.services.identity):
        dids.update(filter(None, (_data_member(event, "did"), _data_member(event, "issuer"))))
    return dids


def follow_identity(
    events: Sequence[SealedEvent],
    *,
    genesis: GenesisConfig,
    practitioners: Mapping[str, Practitioner],
    authorities: Collection[str],
) -> DirectoryChange:
    """The directory changes of a block's events (already admitted, so well-formed).

    `practitioners` are the stored standings of (at least) `touched_dids`; `authorities` the
    registered authorities stored so far.
    """
    ours = _identity_events(events, genesis.services.identity)
    if not ours:
        return DirectoryChange()
    registry = _registry(genesis, practitioners, authorities)
    patients: dict[str, int] = {}
    changed: set[str] = set()
    for event in ours:
        if event.type == PATIENT_REGISTERED:
            pseudonym = PatientRegistered.model_validate(event.event["data"]).pseudonym
            patients.setdefault(pseudonym, event.height)
            continue
        registry = apply_sealed_event(
            registry, parse_event_object(event.event), height=event.height
        )
        changed.add(_data_member(event, "did"))
    known = set(genesis.authorities) | set(authorities)
    return DirectoryChange(
        practitioners=tuple(
            _practitioner(did, standing)
            for did in sorted(changed)
            if (standing := registry.roles_of(did).get(Role.PRACTITIONER)) is not None
            and standing != _standing(practitioners.get(did))
        ),
        authorities={
            did: standing.since
            for did in sorted(changed - known)
            if (standing := registry.roles_of(did).get(Role.AUTHORITY)) is not None
        },
        patients=patients,
    )


def _data_member(event: SealedEvent, name: str) -> str:
    data = event.event.get("data")
    return str(data.get(name, "")) if isinstance(data, Mapping) else ""


def _registry(
    genesis: GenesisConfig,
    practitioners: Mapping[str, Practitioner],
    authorities: Collection[str],
) -> SignerRegistry:
    registry = registry_from_genesis(genesis)
    for did in authorities:
        if Role.AUTHORITY not in registry.roles_of(did):
            registry = registry.with_standing(did, Standing(role=Role.AUTHORITY))
    for did, practitioner in practitioners.items():
        standing = _standing(practitioner)
        if standing is not None:
            registry = registry.with_standing(did, standing)
    return registry


def _standing(practitioner: Practitioner | None) -> Standing | None:
    if practitioner is None:
        return None
    return Standing(
        role=Role.PRACTITIONER,
        since=practitioner.since,
        issuer=practitioner.issuer,
        credential=practitioner.credential,
        valid_from=practitioner.valid_from,
        valid_until=practitioner.valid_until,
        revoked_at=practitioner.revoked,
    )


def _practitioner(did: str, standing: Standing) -> Practitioner:
    issuer, credential, valid_from = standing.issuer, standing.credential, standing.valid_from
    if issuer is None or credential is None or valid_from is None:
        raise ValueError(f"the practitioner standing of {did} lacks its credential")
    return Practitioner(
        did=did,
        since=standing.since,
        issuer=issuer,
        credential=credential,
        valid_from=valid_from,
        valid_until=standing.valid_until,
        revoked=standing.revoked_at,
    )
