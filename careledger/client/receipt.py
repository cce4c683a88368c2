"""Checking a receipt the way an outside auditor would, trusting only a pinned genesis.

A receipt is an RFC 9162 §2.1.3 inclusion proof of one event against the `log_root` of a
FINAL block: a block the genesis sealer signed and a quorum of the genesis validators
attested. Pure: the caller fetches the genesis, the final block, its attestations and the
proof (`careledger.client.receipts`); this module says whether they prove that the event was
sealed, and raises `ReceiptError` (a `VerificationError`, with evidence) when they do not.
Checks, in order: the block's sealer signature and chain id, each attestation (a genesis
validator's signature over this very header), the quorum, the proof's tree size and root
against the block's header, the event it carries (the one asked for, correctly signed), its
leaf hash, and the audit path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from careledger.client.errors import GenesisPinError, ReceiptError
from shared.attestation import Attestation, attesters, verify_attestation
from shared.block import Block, block_hash, verify_block_signature
from shared.canonical import CanonicalizationError, canonicalize
from shared.envelope import parse_event_object, verify_event
from shared.errors import VerificationError
from shared.genesis import GenesisConfig, verify_genesis_event
from shared.merkle import leaf_hash, verify_inclusion

__all__ = ["Receipt", "genesis_fingerprint", "pin_genesis", "verify_receipt"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a verified proof establishes: event `(source, id)` is leaf `leaf_index`, sealed
    in block `height`, of the log of `tree_size` leaves whose root `log_root` the final
    block `final_height` commits to, attested by the validators `attested_by`."""

    source: str
    id: str
    height: int
    leaf_index: int
    tree_size: int
    log_root: str
    final_height: int
    attested_by: tuple[str, ...]


def genesis_fingerprint(genesis_event: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the genesis event's RFC 8785 bytes: the value to pin a chain by."""
    try:
        return hashlib.sha256(canonicalize(dict(genesis_event))).hexdigest()
    except CanonicalizationError as exc:
        raise GenesisPinError(f"the genesis is not JSON: {exc}") from None


def pin_genesis(genesis_event: Mapping[str, Any], *, fingerprint: str | None) -> GenesisConfig:
    """The configuration of a genesis event that verifies (signed by the admin it names)
    and, when `fingerprint` is given, is exactly the pinned one; else `GenesisPinError`."""
    if not isinstance(genesis_event, Mapping):
        raise GenesisPinError("the genesis is not a JSON object")
    if fingerprint is not None:
        found = genesis_fingerprint(genesis_event)
        if found != fingerprint.lower():
            raise GenesisPinError(
                "the genesis is not the pinned one", expected=fingerprint, computed=found
            )
    try:
        return verify_genesis_event(genesis_event)
    except VerificationError as exc:
        raise GenesisPinError(
            f"the genesis does not verify: {exc.message}", check=type(exc).__name__
        ) from exc


def verify_receipt(
    *,
    genesis: GenesisConfig,
    source: str,
    event_id: str,
    final_block: Block,
    attestations: Iterable[Mapping[str, Any]],
    proof: Mapping[str, Any],
) -> Receipt:
    """The event `(source, event_id)` is leaf `leaf_index` of the log committed to by a block
    that the genesis sealer signed and a quorum of genesis validators attested; raises
    `ReceiptError` with evidence (and `check`, the shared verifier that refused) otherwise."""
    try:
        return _verify(
            genesis=genesis,
            source=source,
            event_id=event_id,
            final_block=final_block,
            attestations=attestations,
            proof=proof,
        )
    except ReceiptError:
        raise
    except VerificationError as exc:
        raise ReceiptError(
            exc.message,
            expected=exc.expected,
            computed=exc.computed,
            check=type(exc).__name__,
            **exc.context,
        ) from exc
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        # A member missing or of the wrong kind: not a proof this API would serve.
        raise ReceiptError(
            f"the proof or an attestation is malformed: {type(exc).__name__}"
        ) from exc


def _verify(
    *,
    genesis: GenesisConfig,
    source: str,
    event_id: str,
    final_block: Block,
    attestations: Iterable[Mapping[str, Any]],
    proof: Mapping[str, Any],
) -> Receipt:
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
    leaf_index = proof["leaf_index"]
    height = proof["height"]
    if type(leaf_index) is not int or type(height) is not int:
        raise ReceiptError("leaf_index and height must be integers")
    verify_inclusion(
        computed_leaf,
        leaf_index,
        header.tree_size,
        [bytes.fromhex(step) for step in proof["audit_path"]],
        bytes.fromhex(header.log_root),
    )
    return Receipt(
        source,
        event_id,
        height,
        leaf_index,
        header.tree_size,
        header.log_root,
        header.height,
        tuple(sorted(quorum)),
    )
