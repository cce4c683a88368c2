"""Integers out of range in what a validator reads from Kafka (ADR 0009 at the chain's edge).

Found by this suite: a `ledger.blocks` message whose header held an integer beyond 2**53 - 1
(no signature needed) made `receive_block` raise `CanonicalizationError` while hashing the
header, or `OverflowError` in SQLite while storing the refusal of a height beyond 2**63 - 1;
an attestation naming a genesis validator with such a height (no key needed) raised while its
signed bytes were encoded. The Kafka loop retries a message that raises, so one message
stopped every validator for good. Now each is refused as not a block (`malformed_block`) or
not an attestation (`AttestationFormatError`), and the validator goes on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.validator.adapters.sql import SqlChainStore, migrate_chain_store
from services.validator.service import Validator
from shared.block import block_to_json
from shared.store import open_database
from tests.security.events.pipeline import RecordingMetrics, make_validator
from tests.unit.core.chainfactory import ChainFactory

OUT_OF_RANGE = (-1, 2**53, 2**63, 2**64, 10**30)
HEADER_FIELDS = ("height", "tree_size", "event_count")
SOURCE_FIELDS = ("partition", "first_offset", "last_offset")


@pytest.fixture
def chain() -> ChainFactory:
    factory = ChainFactory()
    factory.seal_many(1, 1)
    return factory


@pytest.fixture
def validator(chain: ChainFactory, tmp_path: Path) -> Iterator[tuple[Validator, RecordingMetrics]]:
    logging.disable(logging.CRITICAL)  # each refusal logs an error line
    try:
        with open_database("sqlite:///validator.db", data_dir=tmp_path) as database:
            migrate_chain_store(database)
            metrics = RecordingMetrics()
            made = make_validator(chain, SqlChainStore(database=database), metrics)
            for block in chain.blocks:
                made.receive_block(block_to_json(block))
            yield made, metrics
    finally:
        logging.disable(logging.NOTSET)


def _next_block(chain: ChainFactory) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(block_to_json(chain.assemble([chain.event()])))
    return value


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("field", HEADER_FIELDS + SOURCE_FIELDS + ("version",))
def test_a_block_with_an_integer_out_of_range_is_not_a_block(
    chain: ChainFactory, validator: tuple[Validator, RecordingMetrics], field: str, value: int
) -> None:
    receiver, metrics = validator
    block = _next_block(chain)
    if field in SOURCE_FIELDS:
        block["header"]["sources"][0][field] = value
    else:
        block["header"][field] = value
    # -1 is a version in range, only not the chain's.
    expected = "bad_header" if (field, value) == ("version", -1) else "malformed_block"
    assert receiver.receive_block(json.dumps(block).encode(), offset=2) is None
    assert metrics.faults == [expected]
    assert receiver.state is not None
    assert receiver.state.head.height == 1
    # The validator goes on: the real block 2 is accepted.
    real = chain.seal([chain.event()])
    assert receiver.receive_block(block_to_json(real), offset=3) is not None


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("field", ["height", "tree_size"])
def test_an_attestation_with_an_integer_out_of_range_is_dropped(
    chain: ChainFactory, validator: tuple[Validator, RecordingMetrics], field: str, value: int
) -> None:
    receiver, metrics = validator
    header = chain.blocks[1].header
    attestation = {
        "chain_id": chain.chain_id,
        "height": header.height,
        "block_hash": chain.blocks[1].block_hash,
        "tree_size": header.tree_size,
        "log_root": header.log_root,
        "validator": chain.did("validator-2"),  # public: no key is needed to name it
        "signature": "A" * 86,
        field: value,
    }
    assert receiver.receive_attestation(json.dumps(attestation).encode()) is False
    assert metrics.faults == []
