"""What the validator's start check costs on a long chain (docs/chain.md, docs/security.md):
`python -m tests.security.faults.measure_start_check [BLOCKS] [EVENTS_PER_BLOCK]`.

A chain of BLOCKS blocks is built with the real `BlockBuilder` (ChainFactory) and fed to the
real `Validator` over the real SQLite store, with the attestations of the two other
validators, as its Kafka loop would; then the three start-up checks are timed on that store:
SQLite's `quick_check`, the start check (`check_stored_chain`, tail of 100 blocks) and the
full audit from genesis (`Validator.audit`). Not a test: a measurement, printed as JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.validator.adapters.metrics import PrometheusValidatorMetrics
from services.validator.adapters.sql import SqlChainStore, check_store_file, migrate_chain_store
from services.validator.service import Validator
from services.validator.start_check import check_stored_chain
from shared.attestation import sign_attestation
from shared.block import block_to_json
from shared.store import open_database
from tests.unit.core.chainfactory import ChainFactory


class _Discard:
    def publish(self, attestation: object) -> None:
        del attestation


def main(blocks: int, events_per_block: int) -> dict[str, float | int]:
    factory = ChainFactory()
    with tempfile.TemporaryDirectory() as directory:
        database = open_database("sqlite:///validator.db", data_dir=Path(directory))
        migrate_chain_store(database)
        store = SqlChainStore(database=database)
        validator = Validator(
            store=store,
            key=factory.keys["validator-1"],
            genesis=factory.config,
            genesis_event=factory.genesis_event,
            publisher=_Discard(),
            metrics=PrometheusValidatorMetrics(CollectorRegistry()),
        )
        validator.restore()
        started = time.perf_counter()
        for offset, block in enumerate(factory.blocks):
            validator.receive_block(block_to_json(block), offset=offset)
        for n in range(1, blocks):
            factory.seal_many(1, events_per_block)
            block = factory.blocks[-1]
            validator.receive_block(block_to_json(block), offset=n)
            for other in ("validator-2", "validator-3"):
                attestation = sign_attestation(block.header, factory.keys[other])
                validator.receive_attestation(attestation.model_dump_json().encode())
        built = time.perf_counter() - started
        size = (Path(directory) / "validator.db").stat().st_size
        timings = {}
        for name, step in (
            ("quick_check", lambda: check_store_file(database)),
            ("start_check", lambda: check_stored_chain(store, factory.config)),
            ("full_audit", validator.audit),
        ):
            started = time.perf_counter()
            step()
            timings[f"{name}_seconds"] = round(time.perf_counter() - started, 3)
        database.close()
    return {
        "blocks": blocks,
        "events_per_block": events_per_block,
        "store_bytes": size,
        "build_seconds": round(built, 1),
        **timings,
    }


if __name__ == "__main__":
    arguments = [int(value) for value in sys.argv[1:3]]
    print(json.dumps(main(*(arguments or [10_000, 5])), indent=2))
