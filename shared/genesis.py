"""The genesis configuration and the admin-signed genesis CloudEvent that carries it (the one
event of block 0, and the content of ``data/genesis.json``); docs/envelope.md describes both.

Everything a third party needs to verify an exported chain offline starts here: the chain id,
the admin, the sealer, the validators and their quorum, the service DIDs, the trusted
licensing authorities and the external publishers' grants.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from shared.crypto import SigningKey
from shared.envelope import (
    EventRejected,
    EventSignatureError,
    build_event,
    is_rfc3339_utc,
    parse_event_object,
    sign_event,
    verify_event,
)
from shared.errors import VerificationError
from shared.events import DidKey
from shared.events.identity import PublisherGrant
from shared.topics import CLINICAL_EVENTS

__all__ = [
    "DEV_KEY_NAMES",
    "GENESIS_EVENT_TYPE",
    "GenesisConfig",
    "GenesisError",
    "PublisherGrant",
    "ServiceDIDs",
    "build_genesis_event",
    "dev_genesis_config",
    "genesis_source",
    "verify_genesis_event",
]

GENESIS_EVENT_TYPE: Final = "org.careledger.ledger.genesis.v1"
#: The dev key names of the brief, in the order `data/keys/` is written.
DEV_KEY_NAMES: Final[tuple[str, ...]] = (
    "admin",
    "sealer",
    "validator-1",
    "validator-2",
    "validator-3",
    "identity",
    "records",
    "billing",
    "authority-demo",
    "publisher-demo",
)
_CHAIN_ID: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class GenesisError(VerificationError):
    """The genesis event (or the request to build one) is not a valid, admin-signed genesis."""


def check_chain_id(value: str) -> str:
    """`value` if it is a valid chain id, else ValueError saying what one is."""
    if _CHAIN_ID.fullmatch(value) is None:
        raise ValueError("a chain id is 1-63 of a-z, 0-9 and '-', starting with a letter or digit")
    return value


def _check_utc_time(value: str) -> str:
    # It becomes the genesis event's `time`, so the envelope's spelling rule applies.
    if not is_rfc3339_utc(value):
        raise ValueError("created_at must be an RFC 3339 UTC date-time ending in 'Z'")
    return value


def _check_unique(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError("each DID may appear only once")
    return values


_Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
_UniqueDIDs = Annotated[tuple[DidKey, ...], AfterValidator(_check_unique)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceDIDs(_Frozen):
    """The keys of CareLedger's own services (admission gives each its own topic)."""

    identity: DidKey
    records: DidKey
    billing: DidKey


class GenesisConfig(_Frozen):
    """The genesis configuration: the `data` of the genesis event."""

    chain_id: Annotated[StrictStr, AfterValidator(check_chain_id)]
    created_at: Annotated[StrictStr, AfterValidator(_check_utc_time)]
    admin: DidKey
    sealer: DidKey
    validators: _UniqueDIDs = Field(min_length=1)
    quorum: StrictInt
    services: ServiceDIDs
    authorities: _UniqueDIDs = ()
    publishers: tuple[PublisherGrant, ...] = ()

    @model_validator(mode="after")
    def _quorum_is_a_majority(self) -> Self:
        # A strict majority: two disjoint quorums cannot exist, so two different blocks at
        # one height cannot both become final.
        count = len(self.validators)
        if not (1 <= self.quorum <= count and 2 * self.quorum > count):
            raise ValueError(
                f"quorum {self.quorum} must be a majority of the {count} validators "
                f"({count // 2 + 1}..{count})"
            )
        return self

    @model_validator(mode="after")
    def _one_grant_per_publisher(self) -> Self:
        # The registry keeps one grant per DID: a second would silently replace the first.
        _check_unique(tuple(grant.did for grant in self.publishers))
        return self


def genesis_source(chain_id: str) -> str:
    """The `source` of a chain's genesis event."""
    return f"careledger:genesis:{chain_id}"


def build_genesis_event(
    config: GenesisConfig, admin: SigningKey, *, event_id: str
) -> dict[str, object]:
    """The signed genesis event for `config`, signed by the admin it names."""
    if admin.did != config.admin:
        raise GenesisError(
            "the genesis event must be signed by the admin it names",
            expected=config.admin,
            computed=admin.did,
        )
    event = build_event(
        source=genesis_source(config.chain_id),
        type=GENESIS_EVENT_TYPE,
        id=event_id,
        time=config.created_at,
        subject=config.chain_id,
        data=config.model_dump(mode="json"),
    )
    return sign_event(event, admin)


def verify_genesis_event(event: Mapping[str, object]) -> GenesisConfig:
    """Check a genesis event completely and return its configuration; raise `GenesisError`
    (with the expected and the found value) otherwise."""
    try:
        parsed = parse_event_object(event)
    except EventRejected as exc:
        raise GenesisError(f"not a valid signed event: {exc.detail}") from exc
    if parsed.type != GENESIS_EVENT_TYPE:
        raise GenesisError("not a genesis event", expected=GENESIS_EVENT_TYPE, computed=parsed.type)
    try:
        config = GenesisConfig.model_validate(parsed.event["data"])
    except ValidationError as exc:
        raise GenesisError(f"data is not a genesis configuration: {exc}") from exc
    members = parsed.event
    for member, expected in (
        ("source", genesis_source(config.chain_id)),
        ("subject", config.chain_id),
        ("time", config.created_at),
        ("signer", config.admin),
    ):
        if members.get(member) != expected:
            raise GenesisError(
                f"genesis member {member!r} does not match its configuration",
                expected=expected,
                computed=members.get(member),
            )
    try:
        verify_event(parsed)
    except EventSignatureError as exc:
        raise GenesisError(
            "the genesis event is not signed by its admin", signer=config.admin
        ) from exc
    return config


def dev_genesis_config(*, chain_id: str, created_at: str, dids: Mapping[str, str]) -> GenesisConfig:
    """The local development configuration from the DIDs of the brief's dev keys: validators
    1-3 with a quorum of 2, the demo authority, and the demo publisher allowed
    ``org.careledger.clinical.*`` on ``clinical.events``."""
    missing = [name for name in DEV_KEY_NAMES if name not in dids]
    if missing:
        raise ValueError(f"no DID for the dev key(s) {', '.join(missing)}")
    return GenesisConfig(
        chain_id=chain_id,
        created_at=created_at,
        admin=dids["admin"],
        sealer=dids["sealer"],
        validators=(dids["validator-1"], dids["validator-2"], dids["validator-3"]),
        quorum=2,
        services=ServiceDIDs(
            identity=dids["identity"], records=dids["records"], billing=dids["billing"]
        ),
        authorities=(dids["authority-demo"],),
        publishers=(
            PublisherGrant(
                did=dids["publisher-demo"],
                name="publisher-demo",
                topic=CLINICAL_EVENTS,
                types=("org.careledger.clinical.*",),
            ),
        ),
    )
