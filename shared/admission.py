"""The admission rules: which signed event may be sealed, decided from the chain alone.

The sealer (deciding) and every validator (re-checking) call the same `admit`, against a
`SignerRegistry` derived only from genesis and the sealed identity events, so both reach the
same verdict for the same event at the same point of the chain. Rules and reasons: docs/chain.md.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Protocol

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from shared.crypto import SignatureError
from shared.envelope import (
    EventRejected,
    ParsedEvent,
    Reason,
    parse_event,
    verify_event,
)
from shared.events import identity, parse_timestamp, type_matches
from shared.events.billing import BILLING_SCHEMAS
from shared.events.identity import IDENTITY_SCHEMAS
from shared.events.records import RECORDS_SCHEMAS
from shared.genesis import GenesisConfig
from shared.merkle import leaf_hash
from shared.topics import BILLING_EVENTS, CLINICAL_EVENTS, IDENTITY_EVENTS, RECORDS_EVENTS

__all__ = [
    "DedupKey",
    "InMemorySeenEvents",
    "PendingSeenEvents",
    "PreverifiedSignatures",
    "Role",
    "SeenEvents",
    "SignatureCheck",
    "SignerRegistry",
    "Standing",
    "StandingVerdict",
    "StandingVerdicts",
    "admit",
    "apply_sealed_event",
    "registry_from_genesis",
    "standing_verdict",
]

DedupKey = tuple[str, str]
#: Checks an event's signature or raises `SignatureError`; `verify_event` by default.
SignatureCheck = Callable[[ParsedEvent], None]

_SERVICE_TOPICS: Final = {
    "identity": IDENTITY_EVENTS,
    "records": RECORDS_EVENTS,
    "billing": BILLING_EVENTS,
}
# Type namespaces only the owning service may publish in, whatever a publisher grant says:
# a grant such as `org.careledger.*` must never let a platform speak for a service.
_RESERVED_PREFIXES: Final = (
    *(f"org.careledger.{service}." for service in _SERVICE_TOPICS),
    "org.careledger.ledger.",
)
_PRACTITIONER_TYPES: Final = ("org.careledger.clinical.*",)
_SCHEMAS: Final = {**IDENTITY_SCHEMAS, **RECORDS_SCHEMAS, **BILLING_SCHEMAS}


class Role(StrEnum):
    """What a DID is on this chain. A DID may hold several roles; its rights are their union."""

    ADMIN = "admin"
    SEALER = "sealer"
    VALIDATOR = "validator"
    SERVICE = "service"
    AUTHORITY = "authority"
    PUBLISHER = "publisher"
    PRACTITIONER = "practitioner"


class Standing(BaseModel):
    """One role held by one DID: the (topic, types) it may publish, and when that holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    name: str = ""
    since: int = 0  # height of the block that sealed the registration (0: genesis)
    topic: str | None = None
    types: tuple[str, ...] = ()
    issuer: str | None = None  # practitioners: the authority that issued the credential
    credential: str | None = None  # practitioners: hex SHA-256 of the credential
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked_at: int | None = None  # height of the block that sealed the revocation

    def in_force(self, at: datetime) -> bool:
        """Not revoked, and `at` (the block's `sealed_at`) inside the validity window."""
        if self.revoked_at is not None:
            return False
        if self.valid_from is not None and at < self.valid_from:
            return False
        return self.valid_until is None or at <= self.valid_until

    def permits(self, topic: str, event_type: str) -> bool:
        """Whether this standing's grant covers publishing `event_type` on `topic`."""
        if topic != self.topic:
            return False
        if self.role is not Role.SERVICE and event_type.startswith(_RESERVED_PREFIXES):
            return False
        return any(type_matches(pattern, event_type) for pattern in self.types)


_Standings = Mapping[str, Mapping[Role, Standing]]
_STANDINGS_JSON: Final = TypeAdapter(dict[str, dict[Role, Standing]])


@dataclass(frozen=True, slots=True)
class SignerRegistry:
    """Who may sign what, derived only from genesis and sealed identity events.

    Immutable: `apply_sealed_event` returns a new registry, so a sealer can drop a block it
    failed to store, and a verifier can refuse a block, without undoing anything.
    """

    chain_id: str
    identity_service: str  # the only DID whose identity events change the registry
    standings: _Standings = field(repr=False)

    def roles_of(self, did: str) -> Mapping[Role, Standing]:
        """Every role `did` has ever held (revoked ones included); empty if unknown."""
        return self.standings.get(did, {})

    def with_standing(self, did: str, standing: Standing) -> SignerRegistry:
        """A registry in which `did` holds `standing` (replacing any of the same role)."""
        # Copy-on-write of the outer map: identity events are rare next to the events they
        # govern, and sharing the inner maps keeps the copy one dict wide.
        standings = dict(self.standings)
        standings[did] = {**self.roles_of(did), standing.role: standing}
        return SignerRegistry(self.chain_id, self.identity_service, standings)

    def to_json_value(self) -> dict[str, Any]:
        """A JSON value from which `from_json_value` restores this registry exactly."""
        return {
            "chain_id": self.chain_id,
            "identity_service": self.identity_service,
            "standings": _STANDINGS_JSON.dump_python(
                {did: dict(roles) for did, roles in self.standings.items()}, mode="json"
            ),
        }

    @classmethod
    def from_json_value(cls, value: Mapping[str, Any]) -> SignerRegistry:
        """Restore a registry saved by `to_json_value` (raises `ValidationError` if altered)."""
        standings = _STANDINGS_JSON.validate_python(value["standings"])
        return cls(str(value["chain_id"]), str(value["identity_service"]), standings)


class SeenEvents(Protocol):
    """The `(source, id)` of every sealed event: a port, so a store can hold a large chain."""

    def contains(self, key: DedupKey) -> bool:
        """Whether an event with this de-duplication key was sealed."""

    def add(self, key: DedupKey) -> None:
        """Record that the event with this key was sealed."""


class InMemorySeenEvents:
    """`SeenEvents` in a set: tests, the offline CLI, and chains that fit in memory."""

    def __init__(self, keys: Collection[DedupKey] = ()) -> None:
        self._keys: set[DedupKey] = set(keys)

    def contains(self, key: DedupKey) -> bool:
        return key in self._keys

    def add(self, key: DedupKey) -> None:
        self._keys.add(key)

    def __len__(self) -> int:
        return len(self._keys)


class PendingSeenEvents:
    """The keys of a block being built or verified, layered over what earlier blocks sealed.

    Nothing reaches the underlying store until `commit`, so a block that is refused (or never
    stored) leaves no trace in it.
    """

    def __init__(self, sealed: SeenEvents) -> None:
        self._sealed = sealed
        self.pending: list[DedupKey] = []
        self._pending_set: set[DedupKey] = set()

    def contains(self, key: DedupKey) -> bool:
        return key in self._pending_set or self._sealed.contains(key)

    def add(self, key: DedupKey) -> None:
        self.pending.append(key)
        self._pending_set.add(key)

    def commit(self) -> None:
        """Record the pending keys as sealed (call once the block is stored or verified)."""
        for key in self.pending:
            self._sealed.add(key)
        self.pending.clear()
        self._pending_set.clear()


@dataclass(frozen=True, slots=True)
class PreverifiedSignatures:
    """A `SignatureCheck` for events whose signatures were verified earlier, in a batch and
    perhaps in another process: each is named by its Merkle leaf hash, which pins the whole
    signed event. An event not in the set is verified here, so nothing goes unchecked."""

    leaf_hashes: frozenset[bytes]

    def __call__(self, event: ParsedEvent) -> None:
        if leaf_hash(event.leaf_bytes) not in self.leaf_hashes:
            verify_event(event)


#: Why a signer may not publish a type on a topic (reason, detail), or None: it may.
StandingVerdict = tuple[Reason, str] | None
#: Verdicts already reached, by (signer, topic, type), for one registry and one moment.
StandingVerdicts = MutableMapping[tuple[str, str, str], StandingVerdict]


def standing_verdict(
    registry: SignerRegistry, signer: str, topic: str, event_type: str, at: datetime
) -> StandingVerdict:
    """Whether `signer` may publish `event_type` on `topic` at `at`, by the registry alone:
    None, or the reason (unknown_signer, revoked_signer, unauthorized_type) and why."""
    standings = registry.roles_of(signer)
    if not standings:
        return Reason.UNKNOWN_SIGNER, f"{signer} is not registered"
    in_force = [standing for standing in standings.values() if standing.in_force(at)]
    if not in_force:
        roles = ", ".join(sorted(standings))
        return Reason.REVOKED_SIGNER, f"{signer} ({roles}) is revoked or expired"
    if not any(standing.permits(topic, event_type) for standing in in_force):
        return Reason.UNAUTHORIZED_TYPE, f"{signer} may not publish {event_type} on {topic}"
    return None


def admit(
    event: ParsedEvent | bytes,
    *,
    topic: str,
    registry: SignerRegistry,
    seen: SeenEvents,
    at: datetime,
    check_signature: SignatureCheck = verify_event,
    verdicts: StandingVerdicts | None = None,
) -> ParsedEvent:
    """Return the parsed event if it may be sealed now; raise `EventRejected` otherwise.

    `topic` is the logical topic it was read from, `at` the `sealed_at` of the block it would
    join. `seen` is only read: the caller records the key once the block is sealed. Reasons,
    checked in this order: malformed, too_large, bad_signature, unknown_signer, revoked_signer,
    unauthorized_type, duplicate. `verdicts` memoises `standing_verdict`: a block's events
    mostly share a few (signer, type) pairs. The caller keeps one mapping per registry and
    moment, and starts a new one when either changes.
    """
    parsed = parse_event(event) if isinstance(event, bytes) else event
    _check_data(parsed)
    try:
        check_signature(parsed)
    except EventRejected:
        raise  # `verify_event` already says bad_signature, with its evidence
    except SignatureError as exc:
        raise EventRejected(Reason.BAD_SIGNATURE, str(exc)) from exc
    if verdicts is None:
        verdict = standing_verdict(registry, parsed.signer, topic, parsed.type, at)
    else:
        asked = (parsed.signer, topic, parsed.type)
        if asked in verdicts:
            verdict = verdicts[asked]
        else:
            verdict = verdicts[asked] = standing_verdict(registry, *asked, at)
    if verdict is not None:
        raise EventRejected(*verdict)
    if seen.contains(parsed.dedup_key):
        raise EventRejected(Reason.DUPLICATE, f"(source, id) {parsed.dedup_key} was already sealed")
    return parsed


def _check_data(parsed: ParsedEvent) -> None:
    """Identity, records and billing events must carry the data their schema defines, whoever
    signs them (a records event's schema is also what keeps content and patient DIDs off the
    chain; a billing event's, amounts that add up)."""
    schema = _SCHEMAS.get(parsed.type)
    if schema is not None:
        try:
            schema.model_validate(parsed.event["data"])
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise EventRejected(
                Reason.MALFORMED, f"data is not a {parsed.type}: {problem}"
            ) from None


def registry_from_genesis(config: GenesisConfig) -> SignerRegistry:
    """The registry at height 0: the roles genesis names, with the rights each carries."""
    standings: dict[str, dict[Role, Standing]] = {}

    def grant(did: str, standing: Standing) -> None:
        standings.setdefault(did, {})[standing.role] = standing

    grant(config.admin, Standing(role=Role.ADMIN, name="admin"))
    grant(config.sealer, Standing(role=Role.SEALER, name="sealer"))
    for number, validator in enumerate(config.validators, start=1):
        grant(validator, Standing(role=Role.VALIDATOR, name=f"validator-{number}"))
    for service, topic in _SERVICE_TOPICS.items():
        own = (f"org.careledger.{service}.*",)
        standing = Standing(role=Role.SERVICE, name=service, topic=topic, types=own)
        grant(getattr(config.services, service), standing)
    for authority in config.authorities:
        grant(authority, Standing(role=Role.AUTHORITY))
    for publisher in config.publishers:
        types = tuple(publisher.types)
        standing = Standing(
            role=Role.PUBLISHER, name=publisher.name, topic=publisher.topic, types=types
        )
        grant(publisher.did, standing)
    return SignerRegistry(config.chain_id, config.services.identity, standings)


def apply_sealed_event(
    registry: SignerRegistry, event: ParsedEvent, *, height: int
) -> SignerRegistry:
    """The registry once `event` is sealed in block `height` (the same one if nothing changes).

    Only identity events signed by the identity service named in genesis count; `event` must
    have been admitted, so its `data` matches its schema.
    """
    apply = _APPLY.get(event.type)
    if apply is None or event.signer != registry.identity_service:
        return registry
    return apply(registry, IDENTITY_SCHEMAS[event.type].model_validate(event.event["data"]), height)


def _register_publisher(
    registry: SignerRegistry, data: identity.PublisherRegistered, height: int
) -> SignerRegistry:
    current = registry.roles_of(data.did).get(Role.PUBLISHER)
    if current is not None and current.revoked_at is not None:
        return registry  # a revoked key stays revoked; the platform registers a new DID
    standing = Standing(
        role=Role.PUBLISHER, name=data.name, since=height, topic=data.topic, types=data.types
    )
    return registry.with_standing(data.did, standing)


def _register_authority(
    registry: SignerRegistry, data: identity.AuthorityRegistered, height: int
) -> SignerRegistry:
    if Role.AUTHORITY in registry.roles_of(data.did):
        return registry
    return registry.with_standing(
        data.did, Standing(role=Role.AUTHORITY, name=data.name, since=height)
    )


def _register_practitioner(
    registry: SignerRegistry, data: identity.PractitionerRegistered, height: int
) -> SignerRegistry:
    if Role.AUTHORITY not in registry.roles_of(data.issuer):
        return registry  # the identity service checks this too; the chain does not trust it to
    current = registry.roles_of(data.did).get(Role.PRACTITIONER)
    if (
        current is not None
        and current.credential == data.credential
        and current.revoked_at is not None
    ):
        return registry  # a revoked credential cannot be registered again
    standing = Standing(
        role=Role.PRACTITIONER,
        name=data.role,
        since=height,
        topic=CLINICAL_EVENTS,
        types=_PRACTITIONER_TYPES,
        issuer=data.issuer,
        credential=data.credential,
        valid_from=parse_timestamp(data.valid_from),
        valid_until=None if data.valid_until is None else parse_timestamp(data.valid_until),
    )
    # A new credential replaces the previous one, revoked or not: revoking a credential is not
    # revoking the practitioner's key.
    return registry.with_standing(data.did, standing)


def _revoke_practitioner(
    registry: SignerRegistry, data: identity.PractitionerRevoked, height: int
) -> SignerRegistry:
    current = registry.roles_of(data.did).get(Role.PRACTITIONER)
    if current is None or (current.issuer, current.credential) != (data.issuer, data.credential):
        return registry  # not the credential in force (superseded, or never registered)
    return _revoke(registry, data.did, Role.PRACTITIONER, height)


def _revoke(registry: SignerRegistry, did: str, role: Role, height: int) -> SignerRegistry:
    current = registry.roles_of(did).get(role)
    if current is None or current.revoked_at is not None:
        return registry
    return registry.with_standing(did, current.model_copy(update={"revoked_at": height}))


def _revoke_publisher(
    registry: SignerRegistry, data: identity.PublisherRevoked, height: int
) -> SignerRegistry:
    return _revoke(registry, data.did, Role.PUBLISHER, height)


# Patients (pseudonymous) and identity types added later grant no signing rights.
_APPLY: Final[Mapping[str, Callable[[SignerRegistry, Any, int], SignerRegistry]]] = {
    identity.PUBLISHER_REGISTERED: _register_publisher,
    identity.PUBLISHER_REVOKED: _revoke_publisher,
    identity.AUTHORITY_REGISTERED: _register_authority,
    identity.PRACTITIONER_REGISTERED: _register_practitioner,
    identity.PRACTITIONER_REVOKED: _revoke_practitioner,
}
