"""The validator's use cases over a real SQLite store: verify, store, attest, refuse, finalise."""

from __future__ import annotations

import json

import pytest

from services.validator.errors import MissingBlocksError
from shared.attestation import Attestation, sign_attestation, verify_attestation
from shared.block import block_to_json
from shared.canonical import canonicalize
from shared.crypto import b64url_encode
from tests.unit.core.chainfactory import ChainFactory, key_for
from tests.unit.validator.conftest import Rig


def _feed(rig: Rig, start: int = 0) -> None:
    for offset, block in enumerate(rig.factory.blocks[start:], start=start):
        rig.validator.receive_block(block_to_json(block), offset=offset)


def test_every_block_is_stored_and_attested(rig: Rig) -> None:
    rig.factory.seal_many(4, 5)
    _feed(rig)
    head = rig.store.head()
    assert head is not None
    assert (head.height, head.block_hash) == (4, rig.factory.blocks[-1].block_hash)
    assert [a.height for a in rig.publisher.sent] == [0, 1, 2, 3, 4]
    for attestation, block in zip(rig.publisher.sent, rig.factory.blocks, strict=True):
        verify_attestation(
            attestation,
            chain_id=rig.factory.chain_id,
            validators=rig.factory.config.validators,
            header=block.header,
        )
    assert rig.metric("careledger_validator_height") == 4
    assert rig.metric("careledger_validator_blocks_verified_total") == 5
    assert rig.metric("careledger_validator_events_verified_total") == 21
    assert rig.validator.fault is None


def test_an_identical_duplicate_is_ignored_but_attested_again(rig: Rig) -> None:
    rig.factory.seal_many(2, 2)
    _feed(rig)
    rig.validator.receive_block(block_to_json(rig.factory.blocks[1]), offset=3)
    assert rig.store.refusals() == []
    assert rig.publisher.sent[-1] == rig.publisher.sent[1]
    assert rig.validator.fault is None


def test_a_tampered_block_is_refused_with_evidence_and_the_head_stays(rig: Rig) -> None:
    rig.factory.seal_many(2, 3)
    _feed(rig)
    good = rig.factory.blocks[-1]
    rig.factory.seal_many(1, 3)
    nxt = rig.factory.blocks[-1]
    value = json.loads(block_to_json(nxt))
    value["events"][1]["data"]["n"] = 999  # a sealed event altered after signing
    rig.validator.receive_block(json.dumps(value).encode(), offset=3)
    head = rig.store.head()
    assert head is not None
    assert head.block_hash == good.block_hash
    refusal = rig.store.refusals()[0]
    assert refusal.height == 3
    assert refusal.raw == json.dumps(value).encode()
    assert refusal.evidence["error"] == refusal.reason
    fault = rig.validator.fault
    assert fault is not None
    assert fault["height"] == 3
    assert rig.metric("careledger_validator_blocks_refused_total", {"reason": refusal.reason}) == 1
    # The real block still verifies afterwards, and the fault clears.
    rig.validator.receive_block(block_to_json(nxt), offset=4)
    head = rig.store.head()
    assert head is not None
    assert head.height == 3
    assert rig.validator.fault is None


def test_a_forged_and_an_unparsable_block_are_refused(rig: Rig) -> None:
    rig.factory.seal_many(1, 2)
    _feed(rig)
    rig.factory.seal_many(1, 2)
    nxt = rig.factory.blocks[-1]
    forged = nxt.model_copy(update={"signature": b64url_encode(key_for("stranger").sign(b"x"))})
    rig.validator.receive_block(block_to_json(forged), offset=2)
    rig.validator.receive_block(b"{not json", offset=3)
    reasons = [r.reason for r in rig.store.refusals()]
    assert reasons == ["BlockFormatError", "BlockSignatureError"]
    assert rig.store.cursor("ledger.blocks") == 3
    head = rig.store.head()
    assert head is not None
    assert head.height == 1


def test_two_sealer_signed_blocks_at_one_height_raise_the_equivocation_alarm(rig: Rig) -> None:
    rig.factory.seal_many(2, 2)
    _feed(rig)
    stored = rig.factory.blocks[2]
    other = rig.factory.resign(stored, sealed_at="2026-01-01T00:00:09.000000Z")
    rig.validator.receive_block(block_to_json(other), offset=3)
    refusal = rig.store.refusals()[0]
    assert refusal.reason == "equivocation"
    assert refusal.conflicting == block_to_json(stored)
    assert refusal.evidence["expected"] == stored.block_hash
    assert refusal.evidence["computed"] == other.block_hash
    # The alarm stays even when the chain moves on.
    rig.factory.seal_many(1, 2)
    rig.validator.receive_block(block_to_json(rig.factory.blocks[-1]), offset=4)
    fault = rig.validator.fault
    assert fault is not None
    assert fault["reason"] == "equivocation"
    assert rig.restarted().fault == fault


def test_a_block_is_final_at_the_genesis_quorum(rig: Rig) -> None:
    rig.factory.seal_many(2, 2)
    _feed(rig)
    assert rig.store.final_height() is None  # our own attestation is one of two needed
    for block in rig.factory.blocks[:2]:
        other = sign_attestation(block.header, rig.factory.keys["validator-2"])
        assert rig.validator.receive_attestation(other.model_dump_json().encode(), offset=0)
        assert not rig.validator.receive_attestation(other.model_dump_json().encode())
    assert rig.store.final_height() == 1
    assert rig.metric("careledger_validator_final_height") == 1


def test_attestations_that_do_not_verify_are_dropped(rig: Rig) -> None:
    rig.factory.seal_many(1, 2)
    _feed(rig)
    header = rig.factory.blocks[1].header
    stranger = sign_attestation(header, key_for("stranger"))
    liar = sign_attestation(header, rig.factory.keys["validator-2"]).model_copy(
        update={"tree_size": 99}
    )
    other_chain = sign_attestation(
        ChainFactory(chain_id="elsewhere").blocks[0].header, rig.factory.keys["validator-3"]
    )
    for raw in (
        stranger.model_dump_json().encode(),
        liar.model_dump_json().encode(),
        other_chain.model_dump_json().encode(),
        b"[]",
    ):
        assert not rig.validator.receive_attestation(raw)
    assert (
        rig.metric(
            "careledger_validator_attestations_refused_total", {"reason": "UnknownValidatorError"}
        )
        == 2
    )
    assert len(rig.store.attestations_at(1)) == 1  # only our own


def test_a_restarted_validator_continues_from_its_store(rig: Rig) -> None:
    rig.factory.seal_many(2, 3)
    _feed(rig)
    rig.factory.seal_many(2, 3)
    again = rig.restarted()
    for offset, block in enumerate(rig.factory.blocks[3:], start=3):
        again.receive_block(block_to_json(block), offset=offset)
    head = rig.store.head()
    assert head is not None
    assert head.height == 4
    assert rig.store.refusals() == []


def test_a_restarted_validator_publishes_its_attestations_of_the_latest_blocks(rig: Rig) -> None:
    rig.factory.seal_many(3, 2)
    _feed(rig)
    for block in rig.factory.blocks[:2]:
        other = sign_attestation(block.header, rig.factory.keys["validator-3"])
        rig.validator.receive_attestation(other.model_dump_json().encode())
    assert rig.store.final_height() == 1
    rig.publisher.sent.clear()
    # Final or not: an attestation lost with a crash is evidence missing from the others.
    assert rig.restarted().reattest_recent() == 4
    assert [a.height for a in rig.publisher.sent] == [0, 1, 2, 3]
    assert {a.validator for a in rig.publisher.sent} == {rig.factory.did("validator-1")}
    rig.publisher.sent.clear()
    assert rig.restarted().reattest_recent(limit=2) == 2
    assert [a.height for a in rig.publisher.sent] == [2, 3]


def test_a_gap_asks_for_a_re_read_once_then_refuses(rig: Rig) -> None:
    rig.factory.seal_many(3, 2)
    for offset, block in enumerate(rig.factory.blocks[:2]):
        rig.validator.receive_block(block_to_json(block), offset=offset)
    ahead = block_to_json(rig.factory.blocks[3])
    with pytest.raises(MissingBlocksError):
        rig.validator.receive_block(ahead, offset=3)
    assert rig.store.refusals() == []
    rig.validator.receive_block(ahead, offset=3)  # still missing after a re-read
    assert [r.reason for r in rig.store.refusals()] == ["BlockLinkError"]
    rig.validator.receive_block(block_to_json(rig.factory.blocks[2]), offset=4)
    rig.validator.receive_block(ahead, offset=5)
    head = rig.store.head()
    assert head is not None
    assert head.height == 3


def test_a_stored_hash_with_other_events_and_a_forged_rival_are_refused(rig: Rig) -> None:
    rig.factory.seal_many(2, 2)
    _feed(rig)
    stored = rig.factory.blocks[1]
    swapped = stored.model_copy(update={"events": tuple(reversed(stored.events))})
    rig.validator.receive_block(block_to_json(swapped), offset=3)
    rival = rig.factory.resign(stored, sealed_at="2026-01-01T00:00:01.500000Z")
    forged = rival.model_copy(update={"signature": b64url_encode(key_for("stranger").sign(b"x"))})
    rig.validator.receive_block(block_to_json(forged), offset=4)
    refusals = rig.store.refusals()
    assert [r.reason for r in refusals] == ["BlockSignatureError", "DuplicateMismatchError"]
    assert refusals[1].conflicting == block_to_json(stored)
    head = rig.store.head()
    assert head is not None
    assert head.height == 2


def test_a_quorum_on_another_block_or_on_two_blocks_never_finalises_ours(rig: Rig) -> None:
    rig.factory.seal_many(2, 2)
    _feed(rig)
    rival = rig.factory.resign(rig.factory.blocks[1], sealed_at="2026-01-01T00:00:01.500000Z")
    rival2 = rig.factory.resign(rig.factory.blocks[2], sealed_at="2026-01-01T00:00:02.500000Z")
    for name in ("validator-2", "validator-3"):
        liar = sign_attestation(rival.header, rig.factory.keys[name])
        assert rig.validator.receive_attestation(liar.model_dump_json().encode())
    # Height 2: ours by validator-1 and -2, the rival by -2 and -3: a finality conflict.
    for name in ("validator-2", "validator-3"):
        liar = sign_attestation(rival2.header, rig.factory.keys[name])
        assert rig.validator.receive_attestation(liar.model_dump_json().encode())
    ours = sign_attestation(rig.factory.blocks[2].header, rig.factory.keys["validator-2"])
    assert rig.validator.receive_attestation(ours.model_dump_json().encode())
    assert rig.store.final_height() is None
    fault = rig.validator.fault
    assert fault is not None
    assert fault["reason"] == "finality_conflict"
    block = rig.store.block_at(1)
    assert block is not None
    assert not block.final


def test_a_signed_attestation_misdescribing_a_stored_block_is_dropped(rig: Rig) -> None:
    """Validly signed by a genesis validator, naming our block's hash, but not its tree size."""
    rig.factory.seal_many(1, 2)
    _feed(rig)
    honest = sign_attestation(rig.factory.blocks[1].header, rig.factory.keys["validator-2"])
    unsigned = honest.model_dump(exclude={"signature"}) | {"tree_size": honest.tree_size + 1}
    key = rig.factory.keys["validator-2"]
    misdescribing = Attestation(
        **unsigned, signature=b64url_encode(key.sign(canonicalize(unsigned)))
    )
    verify_attestation(  # the signature itself is fine: only the block comparison can catch it
        misdescribing, chain_id=rig.factory.chain_id, validators=rig.factory.config.validators
    )
    assert not rig.validator.receive_attestation(misdescribing.model_dump_json().encode())
    assert (
        rig.metric(
            "careledger_validator_attestations_refused_total",
            {"reason": "AttestationMismatchError"},
        )
        == 1
    )
    assert rig.validator.receive_attestation(honest.model_dump_json().encode())


class StoreReads:
    """Counts the store reads the validator's attestation path makes."""

    def __init__(self, rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int]] = []
        for name in ("header_at", "attestations_at"):
            original = getattr(rig.store, name)

            def counted(height: int, _name: str = name, _original: object = original) -> object:
                self.calls.append((_name, height))
                return _original(height)  # type: ignore[operator]

            monkeypatch.setattr(rig.store, name, counted)


def _attest(rig: Rig, height: int, name: str = "validator-2") -> bytes:
    header = rig.factory.blocks[height].header
    return sign_attestation(header, rig.factory.keys[name]).model_dump_json().encode()


def test_peer_attestations_of_a_new_block_read_nothing_from_the_store(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.factory.seal_many(3, 2)
    _feed(rig)
    reads = StoreReads(rig, monkeypatch)
    for height in range(4):
        assert rig.validator.receive_attestation(_attest(rig, height), offset=height)
        assert rig.validator.receive_attestation(_attest(rig, height, "validator-3"))
    assert reads.calls == []
    assert rig.store.final_height() == 3
    assert rig.metric("careledger_validator_final_height") == 3
    # What was kept in memory is what the store holds: a restarted validator agrees.
    restarted = rig.restarted()
    assert not restarted.receive_attestation(_attest(rig, 3))  # stored already
    assert [a.validator for a in rig.store.attestations_at(3)] == sorted(
        rig.factory.keys[name].did for name in ("validator-1", "validator-2", "validator-3")
    )


def test_an_attestation_before_its_block_counts_once_the_block_is_stored(rig: Rig) -> None:
    rig.factory.seal_many(2, 2)
    _feed(rig, start=0)
    rig.factory.seal_many(1, 2)
    early = _attest(rig, 3)
    # The block is not stored yet: the attestation is kept, nothing is final.
    assert rig.validator.receive_attestation(early, offset=0)
    assert rig.store.final_height() is None
    rig.validator.receive_block(block_to_json(rig.factory.blocks[3]), offset=3)
    # Ours and the early one make the quorum as soon as the block is stored.
    assert rig.store.final_height() == 3
    assert not rig.validator.receive_attestation(early, offset=1)


def test_heights_beyond_the_ones_kept_in_memory_are_read_from_the_store(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.validator.service.RECENT_HEIGHTS", 2)
    rig.factory.seal_many(5, 2)
    _feed(rig)
    reads = StoreReads(rig, monkeypatch)
    assert rig.validator.receive_attestation(_attest(rig, 1), offset=0)
    assert reads.calls == [("header_at", 1), ("attestations_at", 1)]
    assert rig.store.final_height() == 1
    # Read once, then kept: the other peer's attestation of it reads nothing.
    assert rig.validator.receive_attestation(_attest(rig, 1, "validator-3"), offset=1)
    assert reads.calls == [("header_at", 1), ("attestations_at", 1)]
    # The newest heights were pushed out by it and are read again when needed.
    assert rig.validator.receive_attestation(_attest(rig, 5), offset=2)
    assert rig.validator.receive_attestation(_attest(rig, 4), offset=3)
    assert ("attestations_at", 4) in reads.calls
    assert rig.store.final_height() == 5
