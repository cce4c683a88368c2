"""A witness's one rule (C2SP tlog-witness): cosign a checkpoint only if it extends, by a
verified RFC 9162 consistency proof, the last checkpoint it cosigned for that origin.

Pure: the state (the latest checkpoint per origin) is read and written by the caller, who
also verifies the checkpoint's signatures first (`shared.checkpoint`). `advance` is the
state transition; `parse_add_checkpoint` reads a `POST /add-checkpoint` request body.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from shared.checkpoint import HASH_BYTES, Checkpoint
from shared.errors import CareLedgerError
from shared.merkle import ConsistencyProofError, verify_consistency

__all__ = [
    "AddCheckpointRequest",
    "AddCheckpointRequestError",
    "BadConsistencyProofError",
    "ForkError",
    "RollbackError",
    "StaleSizeError",
    "WitnessRefusalError",
    "advance",
    "parse_add_checkpoint",
]

#: tlog-witness: at most 63 consistency proof lines (a 2^63 tree needs no more).
MAX_PROOF_LINES: Final = 63
#: Sizes are bounded like every integer at our edge (ADR 0009).
MAX_SIZE: Final = 2**63 - 1
_OLD: Final = re.compile(r"old (0|[1-9][0-9]{0,18})")


class WitnessRefusalError(CareLedgerError):
    """The witness will not cosign this checkpoint. `reason` is a stable code."""

    reason = "refused"

    def __init__(self, message: str, *, known_size: int) -> None:
        super().__init__(message)
        self.message = message
        self.known_size = known_size


class StaleSizeError(WitnessRefusalError):
    """The submitter's `old` size is not the size the witness holds (tlog-witness: 409)."""

    reason = "stale_size"


class RollbackError(WitnessRefusalError):
    """The checkpoint is smaller than one the witness already cosigned."""

    reason = "rollback"


class ForkError(WitnessRefusalError):
    """The checkpoint is not consistent with the one the witness holds: two views of one
    log (the same size with another root, or a consistency proof that does not verify)."""

    reason = "fork"


class BadConsistencyProofError(WitnessRefusalError):
    """The consistency proof is malformed or does not verify (tlog-witness: 422)."""

    reason = "bad_proof"


class AddCheckpointRequestError(CareLedgerError, ValueError):
    """The request body is not `old <size>`, proof lines, a blank line and a note."""


@dataclass(frozen=True, slots=True)
class AddCheckpointRequest:
    """A tlog-witness `add-checkpoint` request: the size the submitter believes the
    witness holds, a consistency proof from it, and the new checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str


def parse_add_checkpoint(body: str) -> AddCheckpointRequest:
    """Read `old <size>\\n`, up to 63 base64 proof lines, a blank line, then the note."""
    head, separator, note = body.partition("\n\n")
    if not separator:
        raise AddCheckpointRequestError("the request has no blank line before the checkpoint")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if match is None:
        raise AddCheckpointRequestError("the first line is 'old <size>'")
    old_size = int(match.group(1))
    if old_size > MAX_SIZE:
        raise AddCheckpointRequestError(f"the old size is at most {MAX_SIZE}")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise AddCheckpointRequestError(f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            node = base64.b64decode(line, validate=True)
        except binascii.Error as exc:
            raise AddCheckpointRequestError("a proof line is a base64 hash") from exc
        if len(node) != HASH_BYTES:
            raise AddCheckpointRequestError("a proof line is a 32-byte hash")
        proof.append(node)
    return AddCheckpointRequest(old_size, tuple(proof), note)


def advance(
    known: Checkpoint | None, new: Checkpoint, *, old_size: int, proof: Sequence[bytes]
) -> Checkpoint:
    """The witness's next state after `new`, submitted as extending size `old_size` with
    `proof`; `known` is the checkpoint it holds for `new.origin` (None: nothing yet).

    In order: `old_size` must be the held size (`StaleSizeError`), `new` may not be smaller
    (`RollbackError`), the same size must have the same root (`ForkError`), and a larger one
    must be proven consistent (`BadConsistencyProofError`: a proof that does not verify
    cannot tell a fork from a corrupted proof). An empty witness accepts any first
    checkpoint, with an empty proof.
    """
    known_size = 0 if known is None else known.size
    if old_size != known_size:
        raise StaleSizeError(
            f"the witness holds size {known_size}, not {old_size}", known_size=known_size
        )
    if known is None:
        if proof:
            raise BadConsistencyProofError(
                "a first checkpoint comes with an empty proof", known_size=0
            )
        return new
    if new.size < known.size:
        raise RollbackError(
            f"size {new.size} is below the size {known.size} already cosigned",
            known_size=known_size,
        )
    if new.size == known.size:
        if new.root_hash != known.root_hash or proof:
            raise ForkError(
                f"another root hash, or a proof, for the cosigned size {known.size}",
                known_size=known_size,
            )
        return new
    try:
        verify_consistency(known.size, new.size, known.root_hash, new.root_hash, list(proof))
    except ConsistencyProofError as exc:
        raise BadConsistencyProofError(
            f"the consistency proof from {known.size} to {new.size} does not verify: {exc.message}",
            known_size=known_size,
        ) from exc
    return new
