"""The validator's Prometheus series: seal-to-final latency on its injected clock, and faults
counted under stable reason codes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from services.validator.adapters.memory import MemoryChainStore
from services.validator.adapters.metrics import PrometheusValidatorMetrics
from services.validator.core.faults import FAULT_CODES, fault_code
from services.validator.errors import StoreIntegrityError
from services.validator.service import Validator
from shared.attestation import sign_attestation
from shared.block import Block, BlockFormatError, ChainError, block_to_json
from shared.crypto import b64url_encode
from shared.events import parse_timestamp
from tests.unit.core.chainfactory import ChainFactory, key_for
from tests.unit.validator.conftest import RecordingPublisher

SEAL_TO_FINAL = "careledger_validator_seal_to_final_seconds"
FAULTS = "careledger_validator_faults_total"


@dataclass
class WallClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class MeteredRig:
    factory: ChainFactory = field(default_factory=ChainFactory)
    store: MemoryChainStore = field(default_factory=MemoryChainStore)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    clock: WallClock = field(init=False)
    metrics: PrometheusValidatorMetrics = field(init=False)
    validator: Validator = field(init=False)

    def __post_init__(self) -> None:
        self.clock = WallClock(sealed_at(self.factory.blocks[0]))
        self.metrics = PrometheusValidatorMetrics(self.registry)
        self.validator = self.restarted()

    def restarted(self) -> Validator:
        """A new validator over the rig's store, counting into the same series."""
        validator = Validator(
            store=self.store,
            key=self.factory.keys["validator-1"],
            genesis=self.factory.config,
            genesis_event=self.factory.genesis_event,
            publisher=self.publisher,
            metrics=self.metrics,
            wall_clock=self.clock,
        )
        validator.restore()
        return validator

    def feed(self, validator: Validator | None = None) -> None:
        head = self.store.head()
        start = 0 if head is None else head.height + 1
        for offset, block in enumerate(self.factory.blocks[start:], start=start):
            (validator or self.validator).receive_block(block_to_json(block), offset=offset)

    def attest(self, block: Block, by: str, validator: Validator | None = None) -> None:
        attestation = sign_attestation(block.header, self.factory.keys[by])
        (validator or self.validator).receive_attestation(attestation.model_dump_json().encode())

    def sample(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def sealed_at(block: Block) -> datetime:
    return parse_timestamp(block.header.sealed_at)


@pytest.fixture
def rig() -> MeteredRig:
    return MeteredRig()


def test_seal_to_final_is_measured_when_the_quorum_is_reached(rig: MeteredRig) -> None:
    rig.factory.seal_many(2, 2)
    rig.feed()
    assert rig.sample(SEAL_TO_FINAL + "_count") == 0  # our own attestation is one of two
    block = rig.factory.blocks[1]
    rig.clock.now = sealed_at(block) + timedelta(milliseconds=750)
    rig.attest(block, "validator-2")
    assert rig.sample(SEAL_TO_FINAL + "_count") == 1
    assert rig.sample(SEAL_TO_FINAL + "_sum") == pytest.approx(0.75)
    assert rig.sample(SEAL_TO_FINAL + "_bucket", le="0.5") == 0
    assert rig.sample(SEAL_TO_FINAL + "_bucket", le="1.0") == 1
    rig.attest(block, "validator-3")  # already final: not measured again
    assert rig.sample(SEAL_TO_FINAL + "_count") == 1


def test_a_block_made_final_by_our_own_attestation_is_measured_once(rig: MeteredRig) -> None:
    rig.factory.seal_many(1, 2)
    rig.feed()
    rig.factory.seal_many(1, 2)
    early = rig.factory.blocks[2]
    rig.attest(early, "validator-3")  # attestations can overtake the block they attest
    rig.clock.now = sealed_at(early) + timedelta(seconds=40)
    rig.feed()
    assert rig.sample(SEAL_TO_FINAL + "_count") == 1
    assert rig.sample(SEAL_TO_FINAL + "_sum") == pytest.approx(40.0)
    assert rig.sample(SEAL_TO_FINAL + "_bucket", le="30.0") == 0
    rig.validator.receive_block(block_to_json(early), offset=3)  # a republished duplicate
    assert rig.sample(SEAL_TO_FINAL + "_count") == 1
    assert rig.store.final_height() == 2


def test_after_a_restart_sealed_at_is_read_back_from_the_store(rig: MeteredRig) -> None:
    rig.factory.seal_many(1, 3)
    rig.feed()
    block = rig.factory.blocks[1]
    restarted = rig.restarted()
    rig.clock.now = sealed_at(block) + timedelta(seconds=2.5)
    rig.attest(block, "validator-2", restarted)
    assert rig.sample(SEAL_TO_FINAL + "_sum") == pytest.approx(2.5)


def test_a_clock_behind_the_sealer_counts_as_no_wait(rig: MeteredRig) -> None:
    rig.factory.seal_many(1, 1)
    rig.feed()
    block = rig.factory.blocks[1]
    rig.clock.now = sealed_at(block) - timedelta(seconds=3)
    rig.attest(block, "validator-2")
    assert rig.sample(SEAL_TO_FINAL + "_count") == 1
    assert rig.sample(SEAL_TO_FINAL + "_sum") == 0.0


def test_every_fault_code_is_exported_at_zero_from_the_start(rig: MeteredRig) -> None:
    for code in FAULT_CODES:
        assert rig.registry.get_sample_value(FAULTS, {"reason": code}) == 0.0
    assert all(code == code.lower() and " " not in code for code in FAULT_CODES)


def test_refused_blocks_count_as_faults_by_code_and_refusals_by_class(rig: MeteredRig) -> None:
    rig.factory.seal_many(1, 2)
    rig.feed()
    rig.factory.seal_many(1, 2)
    nxt = rig.factory.blocks[-1]
    forged = nxt.model_copy(update={"signature": b64url_encode(key_for("stranger").sign(b"x"))})
    rig.validator.receive_block(block_to_json(forged), offset=2)
    rig.validator.receive_block(b"{not json", offset=3)
    rig.validator.receive_block(b"{not json", offset=4)
    assert rig.sample(FAULTS, reason="bad_block_signature") == 1
    assert rig.sample(FAULTS, reason="malformed_block") == 2
    assert rig.sample("careledger_validator_blocks_refused_total", reason="BlockFormatError") == 2
    assert sum(rig.sample(FAULTS, reason=code) for code in FAULT_CODES) == 3


def test_an_equivocation_is_a_fault(rig: MeteredRig) -> None:
    rig.factory.seal_many(2, 2)
    rig.feed()
    stored = rig.factory.blocks[2]
    other = rig.factory.resign(stored, sealed_at="2026-01-01T00:00:09.000000Z")
    rig.validator.receive_block(block_to_json(other), offset=3)
    assert rig.sample(FAULTS, reason="equivocation") == 1
    assert rig.sample("careledger_validator_blocks_refused_total", reason="equivocation") == 1


def test_a_quorum_for_another_block_is_one_finality_conflict(rig: MeteredRig) -> None:
    rig.factory.seal_many(1, 2)
    rig.feed()
    ours = rig.factory.blocks[1]
    theirs = rig.factory.resign(ours, sealed_at="2026-01-01T00:00:07.000000Z")
    rig.attest(theirs, "validator-2")
    assert rig.sample(FAULTS, reason="finality_conflict") == 0  # one vote is no quorum
    rig.attest(theirs, "validator-3")
    assert rig.sample(FAULTS, reason="finality_conflict") == 1
    rig.attest(ours, "validator-2")  # the same conflict, seen again: still one fault
    assert rig.sample(FAULTS, reason="finality_conflict") == 1
    fault = rig.validator.fault
    assert fault is not None
    assert fault["reason"] == "finality_conflict"


def test_an_altered_store_is_a_store_tampered_fault(rig: MeteredRig) -> None:
    rig.factory.seal_many(2, 2)
    rig.feed()
    value = json.loads(block_to_json(rig.factory.blocks[1]))
    value["events"][0]["data"]["n"] = 4242
    rig.store._blocks[1] = replace(rig.store._blocks[1], raw=json.dumps(value).encode())
    with pytest.raises(StoreIntegrityError):
        rig.restarted().audit()
    assert rig.sample(FAULTS, reason="store_tampered") == 1


def test_fault_codes_name_kinds_never_classes() -> None:
    assert fault_code(BlockFormatError("x")) == "malformed_block"
    assert fault_code(StoreIntegrityError("x")) == "store_tampered"
    assert fault_code(ChainError("of no listed kind")) == "invalid_block"


def test_a_validator_without_metrics_counts_nothing_and_still_validates() -> None:
    factory = ChainFactory()
    store = MemoryChainStore()
    validator = Validator(
        store=store,
        key=factory.keys["validator-1"],
        genesis=factory.config,
        genesis_event=factory.genesis_event,
        publisher=RecordingPublisher(),
    )
    validator.restore()
    factory.seal_many(1, 1)
    for offset, block in enumerate(factory.blocks):
        validator.receive_block(block_to_json(block), offset=offset)
    validator.receive_block(b"[]", offset=2)
    head = store.head()
    assert head is not None
    assert head.height == 1
    fault = validator.fault
    assert fault is not None
    assert fault["reason"] == "BlockFormatError"
