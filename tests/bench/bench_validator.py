"""One validator in process on one core: CPU per event, as a ratio to one Ed25519 check.

Method: a chain of BLOCKS blocks of 500 events is built before timing with the real
`BlockBuilder` (`tests.unit.core.chainfactory.ChainFactory.seal`, which admits every event as
the sealer does and signs each block with the sealer's key), each block serialised as it
travels on `ledger.blocks`. The real `Validator` use case (services/validator/service.py)
over the real SQLite chain store (a file in a temp directory, migrated as wiring does, its
durability settings as in production) with Prometheus metrics and an attestation publisher
that discards is then fed, per block, the block's bytes and the attestations of the two other
validators (signed before timing), as its Kafka loop would hand them over. The process is
pinned to one core while it runs. CPU = `time.process_time()` over the whole feed (every
thread of the process, SQLite included) ÷ events; the share of `receive_block` and of
`receive_attestation` is kept apart. Kafka's own costs (fetching, decoding messages, the
producer thread) are not in this number; they are in the pipeline bench's
`cpu_us_per_event_validator-*`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.validator.adapters.metrics import PrometheusValidatorMetrics
from services.validator.adapters.sql import SqlChainStore, migrate_chain_store
from services.validator.service import Validator
from shared.attestation import Attestation, sign_attestation
from shared.block import block_to_json
from shared.store import open_database
from tests.bench.calibrate import BenchRun
from tests.unit.core.chainfactory import ChainFactory

EVENTS_PER_BLOCK = 500
BLOCKS = 40
QUICK_BLOCKS = 6
PEERS = ("validator-2", "validator-3")


class DiscardingPublisher:
    """`AttestationPublisher` that drops what it is given (the broker is not measured)."""

    def publish(self, attestation: Attestation) -> None:
        del attestation


@contextmanager
def one_core() -> Iterator[int]:
    """Run the block on one core of those this process may use (restored afterwards)."""
    allowed = os.sched_getaffinity(0)
    core = max(allowed)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, allowed)


def build_chain(blocks: int) -> tuple[ChainFactory, list[bytes], list[list[bytes]]]:
    """The chain's blocks as `ledger.blocks` values (genesis first), and for each the other
    validators' attestations as `ledger.attestations` values."""
    factory = ChainFactory()
    made = 0
    for _ in range(blocks):
        factory.seal(
            factory.event(data={"encounter": f"enc-{n % 97}", "code": "98005", "n": n})
            for n in range(made, made + EVENTS_PER_BLOCK)
        )
        made += EVENTS_PER_BLOCK
    raws = [block_to_json(block) for block in factory.blocks]
    peers = [
        [
            sign_attestation(block.header, factory.keys[name]).model_dump_json().encode()
            for name in PEERS
        ]
        for block in factory.blocks
    ]
    return factory, raws, peers


def main(run: BenchRun | None = None) -> dict[str, object]:
    run = run or BenchRun.measure()
    blocks = run.size(BLOCKS, QUICK_BLOCKS)
    factory, raws, peers = build_chain(blocks)
    events = blocks * EVENTS_PER_BLOCK
    with (
        tempfile.TemporaryDirectory(prefix="bench-validator-") as directory,
        open_database("sqlite:///validator-1.db", data_dir=Path(directory)) as database,
    ):
        migrate_chain_store(database)
        store = SqlChainStore(database=database)
        validator = Validator(
            store=store,
            key=factory.keys["validator-1"],
            genesis=factory.config,
            genesis_event=factory.genesis_event,
            publisher=DiscardingPublisher(),
            metrics=PrometheusValidatorMetrics(CollectorRegistry()),
        )
        validator.restore()
        # Genesis (one event) is not timed: only blocks of EVENTS_PER_BLOCK count.
        validator.receive_block(raws[0], offset=0)
        block_cpu = attestation_cpu = 0.0
        attestation_offset = 0
        with one_core():
            wall = time.perf_counter()
            for offset in range(1, len(raws)):
                started = time.process_time()
                if validator.receive_block(raws[offset], offset=offset) is None:
                    raise RuntimeError(f"the validator refused block {offset}: {validator.fault}")
                between = time.process_time()
                for value in peers[offset]:
                    validator.receive_attestation(value, offset=attestation_offset)
                    attestation_offset += 1
                attestation_cpu += time.process_time() - between
                block_cpu += between - started
            wall = time.perf_counter() - wall
        final = store.final_height()
    if final != blocks:
        raise RuntimeError(f"final height {final}, expected {blocks}")
    cpu_us = (block_cpu + attestation_cpu) / events * 1e6
    return {
        "validator_blocks": blocks,
        "validator_events": events,
        "validator_cpu_us_per_event": round(cpu_us, 1),
        "validator_cpu_over_verify": round(cpu_us / run.verify_us, 3),
        "validator_cpu_us_per_event_receive_block": round(block_cpu / events * 1e6, 1),
        "validator_cpu_us_per_event_attestations": round(attestation_cpu / events * 1e6, 1),
        "validator_wall_us_per_event": round(wall / events * 1e6, 1),
        "validator_events_per_s_one_core": round(events / wall),
    }
