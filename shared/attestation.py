"""Attestations (topic `ledger.attestations`): a validator's signed word that it re-verified a
block, and finality: a quorum of the genesis validators attesting the same block hash.

Signature: Ed25519 over JCS(attestation without `signature`), as the brief defines it.
Optional member `checkpoint_signature` (ADR 0015): the validator's Ed25519 signature over the
C2SP checkpoint note body of the block's tree head; absent, the attestation is exactly the
brief's, and old attestations verify unchanged.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from shared.block import BlockHeader, SafeCount, block_hash
from shared.canonical import canonicalize
from shared.checkpoint import Checkpoint
from shared.crypto import (
    EncodingError,
    SignatureError,
    SigningKey,
    b64url_decode,
    b64url_encode,
    verify_signature,
)
from shared.errors import VerificationError
from shared.events import DidKey, HexDigest

__all__ = [
    "Attestation",
    "AttestationError",
    "AttestationMismatchError",
    "AttestationSignatureError",
    "FinalityConflictError",
    "UnknownValidatorError",
    "attesters",
    "check_describes",
    "final_block_hash",
    "sign_attestation",
    "verify_attestation",
]


class AttestationError(VerificationError):
    """An attestation fails verification."""


class UnknownValidatorError(AttestationError):
    """The attestation is for another chain, or its validator is not one genesis names."""


class AttestationSignatureError(AttestationError):
    """The validator's signature over the attestation does not verify."""


class AttestationMismatchError(AttestationError):
    """The attestation does not describe the block it is checked against."""


class FinalityConflictError(VerificationError):
    """Two different block hashes at one height each reached the quorum: validators equivocated."""


class Attestation(BaseModel):
    """`validator` re-verified the block `block_hash` at `height` of chain `chain_id`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain_id: StrictStr
    height: SafeCount  # bounded: the signed bytes are RFC 8785 (ADR 0021)
    block_hash: HexDigest
    tree_size: SafeCount
    log_root: HexDigest
    validator: DidKey
    #: base64url Ed25519 by `validator` over the checkpoint note body of this tree head
    #: (`shared.checkpoint`); never written when absent, so old attestations keep their bytes.
    checkpoint_signature: StrictStr | None = Field(
        default=None, exclude_if=lambda value: value is None
    )
    signature: StrictStr

    def signed_bytes(self) -> bytes:
        """The RFC 8785 bytes the signature covers: every member but `signature`."""
        return canonicalize(self.model_dump(mode="json", exclude={"signature"}))


def sign_attestation(
    header: BlockHeader, validator_key: SigningKey, *, checkpoint_origin: str | None = None
) -> Attestation:
    """Attest the block with this header (call it only once the block verified); with
    `checkpoint_origin`, also sign the checkpoint note body of its tree head."""
    unsigned: dict[str, Any] = {
        "chain_id": header.chain_id,
        "height": header.height,
        "block_hash": block_hash(header).hex(),
        "tree_size": header.tree_size,
        "log_root": header.log_root,
        "validator": validator_key.did,
    }
    if checkpoint_origin is not None:
        head = Checkpoint(checkpoint_origin, header.tree_size, bytes.fromhex(header.log_root))
        unsigned["checkpoint_signature"] = b64url_encode(validator_key.sign(head.body()))
    signature = b64url_encode(validator_key.sign(canonicalize(unsigned)))
    return Attestation(**unsigned, signature=signature)


def verify_attestation(
    attestation: Attestation,
    *,
    chain_id: str,
    validators: Collection[str],
    header: BlockHeader | None = None,
) -> None:
    """Check the attestation is for this chain, by a genesis validator, and signed by it; with
    `header`, also that it attests exactly that block. Raises an `AttestationError`."""
    context = {"validator": attestation.validator, "height": attestation.height}
    if attestation.chain_id != chain_id:
        raise UnknownValidatorError(
            "attestation for another chain",
            expected=chain_id,
            computed=attestation.chain_id,
            **context,
        )
    if attestation.validator not in validators:
        raise UnknownValidatorError("the validator is not named in genesis", **context)
    try:
        signature = b64url_decode(attestation.signature)
        verify_signature(attestation.validator, attestation.signed_bytes(), signature)
    except (SignatureError, EncodingError) as exc:
        raise AttestationSignatureError(f"attestation signature: {exc}", **context) from exc
    if header is not None:
        _check_describes(attestation, header)


def _check_describes(attestation: Attestation, header: BlockHeader) -> None:
    check_describes(
        attestation,
        height=header.height,
        block_hash=block_hash(header).hex(),
        tree_size=header.tree_size,
        log_root=header.log_root,
    )


def check_describes(
    attestation: Attestation, *, height: int, block_hash: str, tree_size: int, log_root: str
) -> None:
    """The attestation attests exactly this block (given by its hash and the header fields an
    attestation repeats); raise `AttestationMismatchError` naming the first field that differs.
    For callers that hold a stored block's summary rather than its parsed header."""
    described = {
        "height": height,
        "block_hash": block_hash,
        "tree_size": tree_size,
        "log_root": log_root,
    }
    for name, value in described.items():
        if getattr(attestation, name) != value:
            raise AttestationMismatchError(
                f"the attestation's {name} is not the block's",
                expected=value,
                computed=getattr(attestation, name),
                field=name,
                validator=attestation.validator,
                height=height,
            )


def attesters(
    attestations: Iterable[Attestation],
    *,
    height: int,
    block_hash: str,
    validators: Collection[str],
) -> frozenset[str]:
    """The distinct genesis validators among `attestations` attesting `block_hash` at `height`.

    A query over attestations already verified (`verify_attestation`); signatures are not
    checked again here.
    """
    return frozenset(
        attestation.validator
        for attestation in attestations
        if attestation.height == height
        and attestation.block_hash == block_hash
        and attestation.validator in validators
    )


def final_block_hash(
    attestations: Iterable[Attestation],
    *,
    height: int,
    quorum: int,
    validators: Collection[str],
) -> str | None:
    """The block hash at `height` that `quorum` distinct genesis validators attested, if any.

    Over verified attestations. Raises `FinalityConflictError` (with both hashes) if two
    hashes reach the quorum: only validators signing conflicting blocks can cause that.
    """
    if quorum < 1:
        raise ValueError("a quorum is at least one validator")
    votes: dict[str, set[str]] = {}
    for attestation in attestations:
        if attestation.height == height and attestation.validator in validators:
            votes.setdefault(attestation.block_hash, set()).add(attestation.validator)
    final = sorted(digest for digest, voters in votes.items() if len(voters) >= quorum)
    if len(final) > 1:
        raise FinalityConflictError(
            f"{len(final)} blocks at height {height} reached the quorum",
            height=height,
            block_hashes=final,
            quorum=quorum,
        )
    return final[0] if final else None
