"""Errors of the RFC 9162 §2.1 Merkle log: failed verifications carry their evidence."""

from __future__ import annotations

from shared.errors import CareLedgerError, VerificationError


class MerkleError(VerificationError):
    """A Merkle proof or root did not verify.

    Raised only by the `verify_*` functions, whose inputs (proofs, roots, sizes, indices)
    come from someone else and are therefore evidence: a malformed claim (an index past the
    tree size, a hash of the wrong length, a first size above the second) fails the
    verification like a wrong hash does.
    """


class InclusionProofError(MerkleError):
    """An inclusion proof (RFC 9162 §2.1.3.2) did not verify."""


class ConsistencyProofError(MerkleError):
    """A consistency proof (RFC 9162 §2.1.4.2) did not verify."""


class MerkleArgumentError(CareLedgerError, ValueError):
    """A caller asked the generating side for something that does not exist.

    An index at or past the tree size, a negative size, a first size above the second, a
    hash of the wrong length, or a frontier whose length does not fit its size. This is a
    bad request or a bug, never evidence about the log, so it is deliberately *not* a
    `VerificationError`; an HTTP layer can map it to 400.
    """


class SubtreeStoreError(CareLedgerError):
    """A subtree store broke its contract.

    It answered with the wrong number of hashes or a hash of the wrong size, or it was asked
    to store a second, different hash for a node it already holds (the log was rewritten)
    or to skip nodes of an append-only level.
    """
