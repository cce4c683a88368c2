"""Checking an inclusion proof the way an outside auditor would, trusting only genesis.

Pure: the caller fetches the final block, its attestations and the proof; this module says
whether they prove that the event was sealed, and raises with evidence when they do not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.attestation import Attestation, attesters, verify_attestation
from shared.block import Block, block_hash, verify_block_signature
from shared.envelope import parse_event_object, verify_event
from shared.errors import VerificationError
from shared.genesis import GenesisConfig
from shared.merkle import leaf_hash, verify_inclusion


class ReceiptError(VerificationError):
    """The proof, the block or its attestations do not show that the event was sealed."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a verified proof establishes."""

    source: str
    id: str
    height: int
    leaf_index: int
    tree_size: int
    log_root: str
    final_height: int
    attested_by: tuple[str, ...]


def verify_receipt(
    *,
    genesis: GenesisConfig,
    source: str,
    event_id: str,
    final_block: Block,
    attestations: Iterable[Mapping[str, Any]],
    proof: Mapping[str, Any],
) -> Receipt:
    """The event (source, id) is leaf `leaf_index` of the log committed to by a block that the
    sealer signed and a quorum of genesis validators attested. Raises `VerificationError`s."""
    header = final_block.header
    verify_block_signature(final_block, genesis.sealer)
    if header.chain_id != genesis.chain_id:
        raise ReceiptError(
            "block of another chain", expected=genesis.chain_id, computed=header.chain_id
        )
    valid = []
    for raw in attestations:
        attestation = Attestation.model_validate(raw)
        verify_attestation(
            attestation, chain_id=genesis.chain_id, validators=genesis.validators, header=header
        )
        valid.append(attestation)
    quorum = attesters(
        valid,
        height=header.height,
        block_hash=block_hash(header).hex(),
        validators=genesis.validators,
    )
    if len(quorum) < genesis.quorum:
        raise ReceiptError(
            "the block is not final: too few validators attested it",
            expected=genesis.quorum,
            computed=len(quorum),
            height=header.height,
        )
    for name, expected in (("tree_size", header.tree_size), ("log_root", header.log_root)):
        if proof.get(name) != expected:
            raise ReceiptError(
                f"the proof is not against the final block's {name}",
                expected=expected,
                computed=proof.get(name),
            )
    event = proof.get("event")
    if not isinstance(event, Mapping):
        raise ReceiptError("the proof carries no event")
    if (event.get("source"), event.get("id")) != (source, event_id):
        raise ReceiptError(
            "the proof is for another event",
            expected=[source, event_id],
            computed=[event.get("source"), event.get("id")],
        )
    parsed = parse_event_object(event)
    verify_event(parsed)
    computed_leaf = leaf_hash(parsed.leaf_bytes)
    if proof.get("leaf_hash") != computed_leaf.hex():
        raise ReceiptError(
            "leaf hash does not match the event",
            expected=computed_leaf,
            computed=proof.get("leaf_hash"),
        )
    verify_inclusion(
        computed_leaf,
        int(proof["leaf_index"]),
        header.tree_size,
        [bytes.fromhex(step) for step in proof["audit_path"]],
        bytes.fromhex(header.log_root),
    )
    return Receipt(
        source,
        event_id,
        int(proof["height"]),
        int(proof["leaf_index"]),
        header.tree_size,
        header.log_root,
        header.height,
        tuple(sorted(quorum)),
    )
