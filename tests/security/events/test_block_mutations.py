"""Structured mutations of a valid next block and a valid attestation, for a validator at
height 1: any member replaced by any JSON value (odd and huge numbers, strings, nesting), the
block re-sealed half of the time so that the checks behind the signature are reached. The
validator accepts, refuses under a catalogued fault code, or drops: it never raises."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.validator.adapters.memory import MemoryChainStore
from services.validator.core.faults import FAULT_CODES
from services.validator.errors import MissingBlocksError
from shared.attestation import sign_attestation
from shared.block import BlockHeader, block_to_json, seal_block
from tests.security.events.mutations import JSON_VALUES
from tests.security.events.pipeline import RecordingMetrics, make_validator
from tests.unit.core.chainfactory import ChainFactory

PATIENT = "org.careledger.identity.patient.registered.v1"
CHAIN = ChainFactory()
CHAIN.seal_many(1, 2)
NEXT: dict[str, Any] = json.loads(
    block_to_json(
        CHAIN.assemble([CHAIN.event(), CHAIN.event("identity", PATIENT, {"pseudonym": "ab" * 32})])
    )
)
ATTESTATION: dict[str, Any] = json.loads(
    sign_attestation(CHAIN.blocks[1].header, CHAIN.keys["validator-2"]).model_dump_json()
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    where = copy
    for key in path[:-1]:
        where = where[key]
    where[path[-1]] = new
    return copy


def _resealed(block: dict[str, Any]) -> None:
    try:
        header = BlockHeader.model_validate(block["header"])
    except (ValueError, TypeError, KeyError):
        return
    sealed = seal_block(header, [], CHAIN.keys["sealer"])
    block["block_hash"], block["signature"] = sealed.block_hash, sealed.signature


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(list(_paths(NEXT))),
    new=JSON_VALUES,
    reseal=st.booleans(),
    attestation_path=st.sampled_from(list(_paths(ATTESTATION))),
    attestation=st.booleans(),
)
def test_a_mutated_block_or_attestation_never_raises(
    path: tuple[Any, ...],
    new: Any,
    reseal: bool,
    attestation_path: tuple[Any, ...],
    attestation: bool,
) -> None:
    metrics = RecordingMetrics()
    validator = make_validator(CHAIN, MemoryChainStore(), metrics)
    for block in CHAIN.blocks:
        validator.receive_block(block_to_json(block))
    if attestation:
        raw = json.dumps(_replaced(ATTESTATION, attestation_path, new)).encode()
        validator.receive_attestation(raw)  # True only for a real attestation: never raises
        assert metrics.faults == []
        return
    block = _replaced(NEXT, path, new)
    if reseal and isinstance(block, dict):
        _resealed(block)
    try:
        accepted = validator.receive_block(json.dumps(block).encode())
    except MissingBlocksError:  # a height beyond the next: the loop re-reads the topic
        return
    assert set(metrics.faults) <= FAULT_CODES
    assert (accepted is None) == bool(metrics.faults)
