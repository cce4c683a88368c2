"""The genesis configuration and the admin-signed genesis event: round trips, the dev layout,
and every refusal (configuration rules, event members, signer, signature)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.crypto import SigningKey, base58btc_multibase_encode
from shared.envelope import build_event, parse_and_verify, sign_event, uuid7
from shared.errors import VerificationError
from shared.genesis import (
    DEV_KEY_NAMES,
    GENESIS_EVENT_TYPE,
    GenesisConfig,
    GenesisError,
    PublisherGrant,
    ServiceDIDs,
    build_genesis_event,
    dev_genesis_config,
    genesis_source,
    verify_genesis_event,
)

KEYS = {name: SigningKey.from_seed(bytes([n + 1]) * 32) for n, name in enumerate(DEV_KEY_NAMES)}
DIDS = {name: key.did for name, key in KEYS.items()}
CREATED_AT = "2026-11-24T09:00:00Z"
EVENT_ID = uuid7(1_795_510_800_000, bytes(10))
SMALL_ORDER_DID = "did:key:" + base58btc_multibase_encode(b"\xed\x01\x01" + bytes(31))
CONFIG = dev_genesis_config(chain_id="careledger-dev", created_at=CREATED_AT, dids=DIDS)


def genesis(**overrides: Any) -> dict[str, object]:
    return build_genesis_event(CONFIG, KEYS["admin"], event_id=EVENT_ID, **overrides)


def config_fields(**overrides: Any) -> dict[str, Any]:
    return {**CONFIG.model_dump(mode="json"), **overrides}


# --- the dev configuration ------------------------------------------------------------------


def test_dev_key_names_are_the_briefs_in_order() -> None:
    assert DEV_KEY_NAMES == (
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


def test_dev_genesis_config() -> None:
    config = dev_genesis_config(chain_id="careledger-dev", created_at=CREATED_AT, dids=DIDS)
    assert config == GenesisConfig(
        chain_id="careledger-dev",
        created_at=CREATED_AT,
        admin=DIDS["admin"],
        sealer=DIDS["sealer"],
        validators=(DIDS["validator-1"], DIDS["validator-2"], DIDS["validator-3"]),
        quorum=2,
        services=ServiceDIDs(
            identity=DIDS["identity"], records=DIDS["records"], billing=DIDS["billing"]
        ),
        authorities=(DIDS["authority-demo"],),
        publishers=(
            PublisherGrant(
                did=DIDS["publisher-demo"],
                name="publisher-demo",
                topic="clinical.events",
                types=("org.careledger.clinical.*",),
            ),
        ),
    )


def test_dev_genesis_config_needs_every_dev_key() -> None:
    dids = {name: did for name, did in DIDS.items() if name not in {"sealer", "billing"}}
    with pytest.raises(ValueError, match="sealer, billing"):
        dev_genesis_config(chain_id="c", created_at=CREATED_AT, dids=dids)


# --- the genesis event ----------------------------------------------------------------------


def test_genesis_event_shape() -> None:
    event = genesis()
    assert {name: value for name, value in event.items() if name != "signature"} == {
        "specversion": "1.0",
        "id": EVENT_ID,
        "source": "careledger:genesis:careledger-dev",
        "type": GENESIS_EVENT_TYPE,
        "time": CREATED_AT,
        "subject": "careledger-dev",
        "datacontenttype": "application/json",
        "data": CONFIG.model_dump(mode="json"),
        "signer": DIDS["admin"],
    }
    assert genesis_source("x") == "careledger:genesis:x"
    # It is an ordinary signed event too.
    parse_and_verify(json.dumps(event).encode())


def test_genesis_file_round_trip() -> None:
    text = json.dumps(genesis(), indent=2) + "\n"  # what data/genesis.json holds
    assert verify_genesis_event(json.loads(text)) == CONFIG


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=10, max_size=10, unique=True))
def test_round_trip_for_any_keys(seeds: list[bytes]) -> None:
    keys = dict(zip(DEV_KEY_NAMES, map(SigningKey.from_seed, seeds), strict=True))
    config = dev_genesis_config(
        chain_id="c1", created_at=CREATED_AT, dids={name: key.did for name, key in keys.items()}
    )
    event = build_genesis_event(config, keys["admin"], event_id=EVENT_ID)
    assert verify_genesis_event(event) == config
    assert GenesisConfig.model_validate(config.model_dump(mode="json")) == config


def test_only_the_named_admin_may_build_genesis() -> None:
    with pytest.raises(GenesisError, match="signed by the admin it names") as caught:
        build_genesis_event(CONFIG, KEYS["sealer"], event_id=EVENT_ID)
    assert caught.value.expected == DIDS["admin"]
    assert caught.value.computed == DIDS["sealer"]


def _resigned(key: str = "admin", **members: object) -> dict[str, object]:
    """The genesis event with members changed, signed again (so only the rule under test
    fails, not the signature)."""
    event: dict[str, object] = {**genesis(), **members}
    event = {name: value for name, value in event.items() if value is not None}
    return sign_event(event, KEYS[key])


@pytest.mark.parametrize(
    ("event", "complaint", "expected", "computed"),
    [
        (
            _resigned(type="org.careledger.ledger.other.v1"),
            "not a genesis event",
            GENESIS_EVENT_TYPE,
            "org.careledger.ledger.other.v1",
        ),
        (
            _resigned(source="careledger:genesis:other"),
            "'source' does not match",
            "careledger:genesis:careledger-dev",
            "careledger:genesis:other",
        ),
        (_resigned(subject="other"), "'subject' does not match", "careledger-dev", "other"),
        (_resigned(subject=None), "'subject' does not match", "careledger-dev", None),
        (
            _resigned(time="2026-11-24T09:00:01Z"),
            "'time' does not match",
            CREATED_AT,
            "2026-11-24T09:00:01Z",
        ),
        (
            _resigned(key="sealer"),
            "'signer' does not match",
            DIDS["admin"],
            DIDS["sealer"],
        ),
    ],
)
def test_genesis_members_must_match_the_configuration(
    event: dict[str, object], complaint: str, expected: object, computed: object
) -> None:
    with pytest.raises(GenesisError, match=complaint) as caught:
        verify_genesis_event(event)
    assert caught.value.expected == expected
    assert caught.value.computed == computed


def test_a_tampered_genesis_is_refused() -> None:
    event = genesis()
    event["data"] = config_fields(quorum=3)
    with pytest.raises(GenesisError, match="not signed by its admin") as caught:
        verify_genesis_event(event)
    assert isinstance(caught.value, VerificationError)
    assert caught.value.context["signer"] == DIDS["admin"]


def test_genesis_data_must_be_a_configuration() -> None:
    with pytest.raises(GenesisError, match="not a genesis configuration"):
        verify_genesis_event(_resigned(data=config_fields(quorum=1)))


@pytest.mark.parametrize(
    "event",
    [{}, {"type": GENESIS_EVENT_TYPE}, [1, 2], {**genesis(), "signature": "AAAA"}],
    ids=["empty", "type only", "array", "short signature"],
)
def test_a_genesis_that_is_not_an_event_is_refused(event: Any) -> None:
    with pytest.raises(GenesisError, match="not a valid signed event"):
        verify_genesis_event(event)


def test_a_genesis_built_by_hand_with_another_type_is_refused() -> None:
    event = build_event(
        source=genesis_source("careledger-dev"),
        type="org.careledger.ledger.genesis.v2",
        id=EVENT_ID,
        time=CREATED_AT,
        subject="careledger-dev",
        data=CONFIG.model_dump(mode="json"),
    )
    with pytest.raises(GenesisError, match="not a genesis event"):
        verify_genesis_event(sign_event(event, KEYS["admin"]))


# --- configuration rules --------------------------------------------------------------------

V = [DIDS["validator-1"], DIDS["validator-2"], DIDS["validator-3"], DIDS["records"]]


@pytest.mark.parametrize(
    ("validators", "quorum"),
    [(V[:1], 1), (V[:2], 2), (V[:3], 2), (V[:3], 3), (V[:4], 3), (V[:4], 4)],
)
def test_majority_quorums_are_accepted(validators: list[str], quorum: int) -> None:
    GenesisConfig.model_validate(config_fields(validators=validators, quorum=quorum))


@pytest.mark.parametrize(
    ("validators", "quorum"),
    [(V[:3], 0), (V[:3], 1), (V[:3], 4), (V[:2], 1), (V[:4], 2), (V[:1], 2), (V[:3], -1)],
)
def test_other_quorums_are_refused(validators: list[str], quorum: int) -> None:
    with pytest.raises(ValidationError, match="must be a majority"):
        GenesisConfig.model_validate(config_fields(validators=validators, quorum=quorum))


@pytest.mark.parametrize(
    "changes",
    [
        {"chain_id": ""},
        {"chain_id": "Careledger"},
        {"chain_id": "-dev"},
        {"chain_id": "dev_1"},
        {"chain_id": "a" * 64},
        {"chain_id": 7},
        {"created_at": "2026-11-24T09:00:00+00:00"},
        {"created_at": "2026-11-24"},
        {"admin": "did:web:example.com"},
        {"sealer": SMALL_ORDER_DID},
        {"validators": []},
        {"validators": [V[0], V[0], V[1]]},
        {"validators": [V[0], "did:key:z6Mk"]},
        {"quorum": "2"},
        {"quorum": True},
        {"quorum": 2.0},
        {"services": {"identity": V[0], "records": V[1]}},
        {"services": {"identity": V[0], "records": V[1], "billing": V[2], "pharmacy": V[3]}},
        {"services": {"identity": V[0], "records": V[1], "billing": "did:key:zz"}},
        {"authorities": [V[0], V[0]]},
        {"authorities": [SMALL_ORDER_DID]},
        {"publishers": [config_fields()["publishers"][0]] * 2},
        {"publishers": [{**config_fields()["publishers"][0], "topic": "ledger.blocks"}]},
        {"publishers": [{**config_fields()["publishers"][0], "types": []}]},
        {"publishers": [{**config_fields()["publishers"][0], "types": ["org..x.*"]}]},
        {"publishers": [{**config_fields()["publishers"][0], "name": ""}]},
        {"publishers": [{**config_fields()["publishers"][0], "did": SMALL_ORDER_DID}]},
        {"publishers": [{**config_fields()["publishers"][0], "extra": 1}]},
        {"extra": 1},
    ],
    ids=repr,
)
def test_invalid_configurations_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GenesisConfig.model_validate(config_fields(**changes))


def test_optional_lists_default_to_empty_and_models_are_frozen() -> None:
    fields = config_fields()
    del fields["authorities"], fields["publishers"]
    config = GenesisConfig.model_validate(fields)
    assert config.authorities == ()
    assert config.publishers == ()
    with pytest.raises(ValidationError):
        config.quorum = 3  # type: ignore[misc]


def test_the_documented_example() -> None:
    # docs/envelope.md shows this genesis event; if this test changes, the document must too.
    event = genesis()
    assert event["id"] == "01a20cc8-8e80-7000-8000-000000000000"
    assert DIDS["admin"] == "did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX"
    assert event["signature"] == (
        "P80GO4HHeiBcHSNM2zNaNtpQkf0VbJpf6wrmlxY3xegr1IU4bvfQS-u_JsO4dOsYbGPBk_NSo0z9IXwNki76DA"
    )
