"""Admission rules, the signer registry (genesis + identity events) and identity schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shared.admission import (
    InMemorySeenEvents,
    PendingSeenEvents,
    PreverifiedSignatures,
    Role,
    SignerRegistry,
    Standing,
    admit,
    apply_sealed_event,
    registry_from_genesis,
)
from shared.crypto import SignatureError
from shared.envelope import (
    MAX_EVENT_BYTES,
    EventRejected,
    ParsedEvent,
    Reason,
    encode_event,
    parse_event,
)
from shared.events import identity, parse_timestamp, type_matches
from shared.events.ledger import GENESIS, LEDGER_TYPE_PREFIX, RejectionRecorded
from shared.merkle import leaf_hash
from shared.topics import BILLING_EVENTS, CLINICAL_EVENTS, IDENTITY_EVENTS, RECORDS_EVENTS
from tests.unit.core.chainfactory import GENESIS_TIME, ChainFactory

NOW = GENESIS_TIME + timedelta(hours=1)
CREDENTIAL = "ab" * 32


@pytest.fixture(scope="module")
def factory() -> ChainFactory:
    return ChainFactory()


def _admit(
    factory: ChainFactory,
    event: dict[str, Any] | bytes,
    *,
    topic: str = CLINICAL_EVENTS,
    registry: SignerRegistry | None = None,
    seen: InMemorySeenEvents | None = None,
    at: datetime = NOW,
) -> ParsedEvent:
    raw = event if isinstance(event, bytes) else encode_event(event)
    return admit(
        raw,
        topic=topic,
        registry=registry or factory.state.registry,
        seen=seen or InMemorySeenEvents(),
        at=at,
    )


def _reason(factory: ChainFactory, event: dict[str, Any] | bytes, **kwargs: Any) -> Reason:
    with pytest.raises(EventRejected) as caught:
        _admit(factory, event, **kwargs)
    return caught.value.reason


def _sealed(registry: SignerRegistry, event: dict[str, Any], height: int = 1) -> SignerRegistry:
    return apply_sealed_event(registry, parse_event(encode_event(event)), height=height)


def _practitioner(
    factory: ChainFactory, *, valid_until: str | None = "2026-06-30T00:00:00Z", **changes: Any
) -> dict[str, Any]:
    data = {
        "did": factory.did("practitioner"),
        "issuer": factory.did("authority"),
        "credential": CREDENTIAL,
        "role": "physician",
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_until": valid_until,
        **changes,
    }
    return factory.identity_event(
        identity.PRACTITIONER_REGISTERED, identity.PractitionerRegistered.model_validate(data)
    )


# --- what each role may publish -------------------------------------------------------------


def test_a_genesis_publisher_may_publish_its_granted_types(factory: ChainFactory) -> None:
    event = factory.event("publisher")
    parsed = _admit(factory, event)
    assert parsed.event == event
    assert parsed.dedup_key == (event["source"], event["id"])


def test_an_already_parsed_event_is_admitted_without_parsing_again(factory: ChainFactory) -> None:
    parsed = parse_event(encode_event(factory.event()))
    same = admit(
        parsed,
        topic=CLINICAL_EVENTS,
        registry=factory.state.registry,
        seen=InMemorySeenEvents(),
        at=NOW,
    )
    assert same is parsed


@pytest.mark.parametrize(
    ("service", "topic"),
    [("identity", IDENTITY_EVENTS), ("records", RECORDS_EVENTS), ("billing", BILLING_EVENTS)],
)
def test_a_service_publishes_its_own_namespace_on_its_own_topic(
    factory: ChainFactory, service: str, topic: str
) -> None:
    own = factory.event(service, f"org.careledger.{service}.thing.happened.v1")
    _admit(factory, own, topic=topic)
    assert _reason(factory, own, topic=CLINICAL_EVENTS) is Reason.UNAUTHORIZED_TYPE
    other = "records" if service != "records" else "billing"
    foreign = factory.event(service, f"org.careledger.{other}.thing.happened.v1")
    assert _reason(factory, foreign, topic=topic) is Reason.UNAUTHORIZED_TYPE


@pytest.mark.parametrize("role", ["admin", "sealer", "validator-1", "authority"])
def test_roles_that_act_through_services_publish_nothing(factory: ChainFactory, role: str) -> None:
    assert _reason(factory, factory.event(role)) is Reason.UNAUTHORIZED_TYPE


def test_a_publisher_may_not_publish_outside_its_grant(factory: ChainFactory) -> None:
    on_wrong_topic = factory.event("publisher")
    assert _reason(factory, on_wrong_topic, topic=RECORDS_EVENTS) is Reason.UNAUTHORIZED_TYPE
    wrong_type = factory.event("publisher", "org.careledger.pharmacy.dispensed.v1")
    assert _reason(factory, wrong_type) is Reason.UNAUTHORIZED_TYPE


def test_no_grant_reaches_into_a_service_namespace(factory: ChainFactory) -> None:
    grant = identity.PublisherRegistered(
        did=factory.did("publisher-2"),
        name="greedy",
        topic=IDENTITY_EVENTS,
        types=("org.careledger.*",),
    )
    registry = _sealed(
        factory.state.registry, factory.identity_event(identity.PUBLISHER_REGISTERED, grant)
    )
    forged = factory.event(
        "publisher-2",
        "org.careledger.identity.publisher.revoked.v1",
        {"did": factory.did("publisher")},
    )
    assert (
        _reason(factory, forged, topic=IDENTITY_EVENTS, registry=registry)
        is Reason.UNAUTHORIZED_TYPE
    )
    mine = factory.event("publisher-2", "org.careledger.clinical.note.v1")
    _admit(factory, mine, topic=IDENTITY_EVENTS, registry=registry)


def test_an_unknown_topic_admits_nothing(factory: ChainFactory) -> None:
    assert _reason(factory, factory.event(), topic="ledger.blocks") is Reason.UNAUTHORIZED_TYPE


# --- every reason code, and their order ------------------------------------------------------


def test_malformed_and_too_large_come_from_parsing(factory: ChainFactory) -> None:
    assert _reason(factory, b"{not json") is Reason.MALFORMED
    assert _reason(factory, b" " * (MAX_EVENT_BYTES + 1)) is Reason.TOO_LARGE


def test_identity_data_must_match_its_schema_whoever_signs(factory: ChainFactory) -> None:
    bad = factory.event("stranger", identity.PUBLISHER_REVOKED, {"did": "did:key:nope"})
    assert _reason(factory, bad, topic=IDENTITY_EVENTS) is Reason.MALFORMED
    extra = factory.event(
        "identity", identity.PATIENT_REGISTERED, {"pseudonym": "00" * 32, "name": "x"}
    )
    assert _reason(factory, extra, topic=IDENTITY_EVENTS) is Reason.MALFORMED


def test_records_data_must_match_its_schema(factory: ChainFactory) -> None:
    content = factory.event(
        "records", "org.careledger.records.record.accessed.v1", {"resource": {"text": "PHI"}}
    )
    assert _reason(factory, content, topic=RECORDS_EVENTS) is Reason.MALFORMED


def test_bad_signature(factory: ChainFactory) -> None:
    event = factory.event()
    event["data"] = {"n": -1}
    assert _reason(factory, event) is Reason.BAD_SIGNATURE


def test_a_signature_check_raising_a_plain_signature_error_is_bad_signature(
    factory: ChainFactory,
) -> None:
    def refuse(_: ParsedEvent) -> None:
        raise SignatureError("refused by a batch verifier")

    with pytest.raises(EventRejected) as caught:
        admit(
            encode_event(factory.event()),
            topic=CLINICAL_EVENTS,
            registry=factory.state.registry,
            seen=InMemorySeenEvents(),
            at=NOW,
            check_signature=refuse,
        )
    assert caught.value.reason is Reason.BAD_SIGNATURE
    assert "batch verifier" in caught.value.detail


def test_unknown_signer(factory: ChainFactory) -> None:
    assert _reason(factory, factory.event("stranger")) is Reason.UNKNOWN_SIGNER


def test_duplicate(factory: ChainFactory) -> None:
    event = factory.event()
    seen = InMemorySeenEvents([(event["source"], event["id"])])
    assert _reason(factory, event, seen=seen) is Reason.DUPLICATE
    assert len(seen) == 1  # admission only reads the set


def test_the_first_failing_check_names_the_reason(factory: ChainFactory) -> None:
    stranger = factory.event("stranger")
    tampered = {**stranger, "data": {"n": 0}}
    assert _reason(factory, tampered) is Reason.BAD_SIGNATURE  # before unknown_signer
    seen = InMemorySeenEvents([(stranger["source"], stranger["id"])])
    assert _reason(factory, stranger, seen=seen) is Reason.UNKNOWN_SIGNER  # before duplicate
    registry = _sealed(
        factory.state.registry,
        factory.identity_event(
            identity.PUBLISHER_REVOKED, identity.PublisherRevoked(did=factory.did("publisher"))
        ),
    )
    wrong_topic = factory.event("publisher")
    assert (
        _reason(factory, wrong_topic, topic=RECORDS_EVENTS, registry=registry)
        is Reason.REVOKED_SIGNER
    )  # before unauthorized_type


# --- the registry follows sealed identity events ---------------------------------------------


def test_a_revoked_publisher_is_refused_from_then_on(factory: ChainFactory) -> None:
    revoke = factory.identity_event(
        identity.PUBLISHER_REVOKED, identity.PublisherRevoked(did=factory.did("publisher"))
    )
    registry = _sealed(factory.state.registry, revoke, height=7)
    standing = registry.roles_of(factory.did("publisher"))[Role.PUBLISHER]
    assert standing.revoked_at == 7
    assert _reason(factory, factory.event(), registry=registry) is Reason.REVOKED_SIGNER
    assert _sealed(registry, revoke, height=9) is registry  # revoking twice changes nothing
    again = identity.PublisherRegistered(
        did=factory.did("publisher"),
        name="back",
        topic=CLINICAL_EVENTS,
        types=("org.careledger.clinical.*",),
    )
    assert (
        _sealed(registry, factory.identity_event(identity.PUBLISHER_REGISTERED, again)) is registry
    )


def test_a_registered_publisher_is_admitted_and_can_be_regranted(factory: ChainFactory) -> None:
    event = factory.event("publisher-2", "org.careledger.clinical.note.v1")
    assert _reason(factory, event) is Reason.UNKNOWN_SIGNER
    grant = identity.PublisherRegistered(
        did=factory.did("publisher-2"),
        name="p2",
        topic=CLINICAL_EVENTS,
        types=("org.careledger.clinical.note.v1",),
    )
    registry = _sealed(
        factory.state.registry,
        factory.identity_event(identity.PUBLISHER_REGISTERED, grant),
        height=3,
    )
    _admit(factory, event, registry=registry)
    assert registry.roles_of(factory.did("publisher-2"))[Role.PUBLISHER].since == 3
    narrower = grant.model_copy(update={"types": ("org.careledger.clinical.other.v1",)})
    registry = _sealed(registry, factory.identity_event(identity.PUBLISHER_REGISTERED, narrower))
    assert _reason(factory, event, registry=registry) is Reason.UNAUTHORIZED_TYPE


def test_revoking_an_unknown_publisher_changes_nothing(factory: ChainFactory) -> None:
    registry = factory.state.registry
    revoke = identity.PublisherRevoked(did=factory.did("stranger"))
    assert _sealed(registry, factory.identity_event(identity.PUBLISHER_REVOKED, revoke)) is registry


def test_only_the_identity_service_changes_the_registry(factory: ChainFactory) -> None:
    registry = factory.state.registry
    grant = identity.PublisherRegistered(
        did=factory.did("stranger"),
        name="self-made",
        topic=CLINICAL_EVENTS,
        types=("org.careledger.clinical.*",),
    )
    forged = factory.event("records", identity.PUBLISHER_REGISTERED, grant)
    assert _sealed(registry, forged) is registry
    assert _sealed(registry, factory.event("publisher")) is registry


def test_patients_and_other_identity_events_grant_nothing(factory: ChainFactory) -> None:
    registry = factory.state.registry
    patient = factory.identity_event(
        identity.PATIENT_REGISTERED, identity.PatientRegistered(pseudonym="cd" * 32)
    )
    assert _sealed(registry, patient) is registry
    other = factory.event("identity", "org.careledger.identity.key.rotated.v1", {"x": 1})
    assert _sealed(registry, other) is registry


def test_a_practitioner_publishes_clinical_events_within_the_credential_window(
    factory: ChainFactory,
) -> None:
    registry = _sealed(factory.state.registry, _practitioner(factory), height=2)
    note = factory.event("practitioner", "org.careledger.clinical.note.signed.v1")
    _admit(factory, note, registry=registry)
    _admit(
        factory, note, registry=registry, at=parse_timestamp("2026-06-30T00:00:00Z")
    )  # inclusive
    expired = datetime(2026, 6, 30, 0, 0, 1, tzinfo=UTC)
    assert _reason(factory, note, registry=registry, at=expired) is Reason.REVOKED_SIGNER
    early = datetime(2025, 12, 31, tzinfo=UTC)
    assert _reason(factory, note, registry=registry, at=early) is Reason.REVOKED_SIGNER
    assert (
        _reason(factory, note, registry=registry, topic=RECORDS_EVENTS) is Reason.UNAUTHORIZED_TYPE
    )
    created = {
        "record": "00000000-0000-4000-8000-000000000001",
        "version": 1,
        "resource_type": "Observation",
        "author": factory.did("practitioner"),
        "patient": "00" * 32,
        "commitment": "11" * 32,
        "ciphertext": "22" * 32,
    }
    records = factory.event("practitioner", "org.careledger.records.record.created.v1", created)
    assert _reason(factory, records, registry=registry) is Reason.UNAUTHORIZED_TYPE


def test_a_credential_without_valid_until_does_not_expire(factory: ChainFactory) -> None:
    registry = _sealed(factory.state.registry, _practitioner(factory, valid_until=None))
    note = factory.event("practitioner", "org.careledger.clinical.note.signed.v1")
    _admit(factory, note, registry=registry, at=datetime(2099, 1, 1, tzinfo=UTC))


def test_a_practitioner_needs_a_trusted_issuer(factory: ChainFactory) -> None:
    registry = factory.state.registry
    untrusted = _practitioner(factory, issuer=factory.did("stranger"))
    assert _sealed(registry, untrusted) is registry
    authority = identity.AuthorityRegistered(did=factory.did("stranger"), name="Board")
    registry = _sealed(
        registry, factory.identity_event(identity.AUTHORITY_REGISTERED, authority), height=4
    )
    assert registry.roles_of(factory.did("stranger"))[Role.AUTHORITY].since == 4
    assert (
        _sealed(registry, factory.identity_event(identity.AUTHORITY_REGISTERED, authority))
        is registry
    )
    registry = _sealed(registry, untrusted)
    assert Role.PRACTITIONER in registry.roles_of(factory.did("practitioner"))


def test_revoking_a_credential_revokes_that_credential_only(factory: ChainFactory) -> None:
    registry = _sealed(factory.state.registry, _practitioner(factory))
    note = factory.event("practitioner", "org.careledger.clinical.note.signed.v1")

    def revoke(**changes: Any) -> dict[str, Any]:
        data = {
            "did": factory.did("practitioner"),
            "issuer": factory.did("authority"),
            "credential": CREDENTIAL,
        }
        model = identity.PractitionerRevoked.model_validate({**data, **changes})
        return factory.identity_event(identity.PRACTITIONER_REVOKED, model)

    assert _sealed(registry, revoke(credential="00" * 32)) is registry
    assert _sealed(registry, revoke(issuer=factory.did("stranger"))) is registry
    assert _sealed(registry, revoke(did=factory.did("stranger"))) is registry
    revoked = _sealed(registry, revoke(), height=5)
    assert _reason(factory, note, registry=revoked) is Reason.REVOKED_SIGNER
    assert _sealed(revoked, _practitioner(factory)) is revoked  # the same credential stays revoked
    renewed = _sealed(revoked, _practitioner(factory, credential="cd" * 32))
    _admit(factory, note, registry=renewed)


def test_the_registry_round_trips_through_json(factory: ChainFactory) -> None:
    registry = _sealed(factory.state.registry, _practitioner(factory), height=2)
    restored = SignerRegistry.from_json_value(registry.to_json_value())
    assert restored == registry
    with pytest.raises(ValidationError):
        SignerRegistry.from_json_value(
            {**registry.to_json_value(), "standings": {"x": {"nope": {}}}}
        )


def test_the_genesis_registry_names_every_role(factory: ChainFactory) -> None:
    registry = registry_from_genesis(factory.config)
    roles = {name: set(registry.roles_of(factory.did(name))) for name in factory.keys}
    assert roles["admin"] == {Role.ADMIN}
    assert roles["sealer"] == {Role.SEALER}
    assert roles["validator-2"] == {Role.VALIDATOR}
    assert roles["identity"] == {Role.SERVICE}
    assert roles["authority"] == {Role.AUTHORITY}
    assert roles["publisher"] == {Role.PUBLISHER}
    assert roles["stranger"] == set()
    assert registry.identity_service == factory.did("identity")
    assert registry.chain_id == factory.chain_id


def test_standing_rules() -> None:
    standing = Standing(
        role=Role.PUBLISHER, topic=CLINICAL_EVENTS, types=("org.careledger.clinical.x.v1",)
    )
    assert standing.permits(CLINICAL_EVENTS, "org.careledger.clinical.x.v1")
    assert not standing.permits(CLINICAL_EVENTS, "org.careledger.clinical.x.v2")
    assert standing.in_force(NOW)
    assert not standing.model_copy(update={"revoked_at": 1}).in_force(NOW)


# --- seen events and signatures checked once --------------------------------------------------


def test_pending_seen_events_reach_the_store_only_on_commit() -> None:
    sealed = InMemorySeenEvents([("s", "1")])
    pending = PendingSeenEvents(sealed)
    pending.add(("s", "2"))
    assert pending.contains(("s", "1"))
    assert pending.contains(("s", "2"))
    assert not sealed.contains(("s", "2"))
    pending.commit()
    assert sealed.contains(("s", "2"))
    assert pending.pending == []
    assert len(sealed) == 2


def test_preverified_signatures_skip_the_check_once_and_only_for_what_was_checked(
    factory: ChainFactory,
) -> None:
    good = parse_event(encode_event(factory.event()))
    forged_event = factory.event()
    forged_event["data"] = {"n": "forged"}
    forged = parse_event(encode_event(forged_event))
    vouched = PreverifiedSignatures(frozenset({leaf_hash(good.leaf_bytes)}))
    vouched(good)  # no verification needed
    with pytest.raises(EventRejected) as caught:
        vouched(forged)  # not vouched for: verified here, and it fails
    assert caught.value.reason is Reason.BAD_SIGNATURE
    # A vouched-for leaf is trusted as it stands: the caller owns that promise.
    PreverifiedSignatures(frozenset({leaf_hash(forged.leaf_bytes)}))(forged)


def test_admit_checks_each_signature_exactly_once(factory: ChainFactory) -> None:
    calls: list[ParsedEvent] = []
    admit(
        encode_event(factory.event()),
        topic=CLINICAL_EVENTS,
        registry=factory.state.registry,
        seen=InMemorySeenEvents(),
        at=NOW,
        check_signature=calls.append,
    )
    assert len(calls) == 1


# --- schemas and the value types they use -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T02:00:00+02:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00.1234567Z", datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2026-01-01T00:00:00.5Z", datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_timestamps_parse_to_utc(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00Z",
        "2026-01-01T00:00:00",
        "2026-13-01T00:00:00Z",
        "x",
        # In range as written, out of the calendar once in UTC (an OverflowError inside).
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-12:00",
    ],
)
def test_timestamps_refuse_what_rfc_3339_does_not_allow(text: str) -> None:
    with pytest.raises(ValueError, match="date-time"):
        parse_timestamp(text)


def test_type_patterns() -> None:
    assert type_matches("org.careledger.clinical.*", "org.careledger.clinical.a.v1")
    assert not type_matches("org.careledger.clinical.*", "org.careledger.clinicalx.a.v1")
    assert type_matches("org.careledger.clinical.a.v1", "org.careledger.clinical.a.v1")
    assert not type_matches("org.careledger.clinical.a.v1", "org.careledger.clinical.a.v2")


@pytest.mark.parametrize(
    "changes",
    [
        {"did": "did:key:z6Mk"},
        {"did": 7},
        {"topic": "ledger.blocks"},
        {"types": ()},
        {"types": ("org.*.x",)},
        {"types": ("org..x",)},
        {"types": ("*",)},
        {"name": ""},
        {"extra": 1},
    ],
)
def test_publisher_registered_refuses_bad_data(
    factory: ChainFactory, changes: dict[str, Any]
) -> None:
    data = {
        "did": factory.did("publisher"),
        "name": "p",
        "topic": CLINICAL_EVENTS,
        "types": ["org.careledger.*"],
    }
    identity.PublisherRegistered.model_validate(data)
    with pytest.raises(ValidationError):
        identity.PublisherRegistered.model_validate({**data, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {"valid_until": "2025-12-31T23:59:59Z"},
        {"valid_from": "yesterday"},
        {"credential": "AB" * 32},
        {"issuer": None},
    ],
)
def test_practitioner_registered_refuses_bad_data(
    factory: ChainFactory, changes: dict[str, Any]
) -> None:
    data = {
        "did": factory.did("practitioner"),
        "issuer": factory.did("authority"),
        "credential": CREDENTIAL,
        "role": "nurse",
        "valid_from": "2026-01-01T00:00:00Z",
    }
    identity.PractitionerRegistered.model_validate(data)
    with pytest.raises(ValidationError):
        identity.PractitionerRegistered.model_validate({**data, **changes})


def test_event_schemas_are_frozen(factory: ChainFactory) -> None:
    model = identity.PatientRegistered(pseudonym="ef" * 32)
    with pytest.raises(ValidationError):
        model.pseudonym = "00" * 32  # type: ignore[misc]
    assert set(identity.IDENTITY_SCHEMAS) == {
        identity.PUBLISHER_REGISTERED,
        identity.PUBLISHER_REVOKED,
        identity.AUTHORITY_REGISTERED,
        identity.PRACTITIONER_REGISTERED,
        identity.PRACTITIONER_REVOKED,
        identity.PATIENT_REGISTERED,
    }


# --- the ledger.rejected record --------------------------------------------------------------


def test_a_rejection_is_recorded_with_its_reason_and_the_original_value(
    factory: ChainFactory,
) -> None:
    raw = b'{"broken": \xff'
    with pytest.raises(EventRejected) as caught:
        _admit(factory, raw)
    record = RejectionRecorded.of(
        caught.value, topic=CLINICAL_EVENTS, partition=2, offset=41, raw=raw
    )
    value = json.loads(record.model_dump_json())
    assert value == {
        "reason": "malformed",
        "detail": caught.value.detail,
        "topic": CLINICAL_EVENTS,
        "partition": 2,
        "offset": 41,
        "raw": '{"broken": \\xff',
    }
    assert RejectionRecorded.model_validate_json(record.model_dump_json()) == record
    with pytest.raises(ValueError, match="input topic"):
        RejectionRecorded.of(
            caught.value, topic="cl.clinical.events", partition=0, offset=0, raw=raw
        )


def test_the_ledger_family_names_genesis() -> None:
    assert GENESIS == "org.careledger.ledger.genesis.v1"
    assert GENESIS.startswith(LEDGER_TYPE_PREFIX)
