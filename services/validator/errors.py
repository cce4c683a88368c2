"""Errors of the validator service."""

from __future__ import annotations

from shared.block import ChainError
from shared.errors import CareLedgerError


class ValidatorError(CareLedgerError):
    """Base class of the validator service's deliberate errors."""


class NoChainYetError(ValidatorError):
    """No block has been verified yet: there is no head to answer from."""


class UnknownBlockError(ValidatorError):
    """No stored block at that height."""


class UnknownEventError(ValidatorError):
    """No sealed event with that `(source, id)`."""


class ProofRequestError(ValidatorError, ValueError):
    """The sizes asked for do not name a proof of the stored log (e.g. beyond the head)."""


class EquivocationError(ChainError):
    """Two different blocks at one height, both signed by the genesis sealer."""


class DuplicateMismatchError(ChainError):
    """A block with the hash of a stored block but other contents (events swapped in)."""


class MissingBlocksError(ValidatorError):
    """A block arrived ahead of the head: the consumer must read `ledger.blocks` again from
    its start. Not a verification failure (nothing is refused yet)."""

    def __init__(self, message: str, *, expected: int, computed: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.computed = computed


class StoreIntegrityError(ChainError):
    """The validator's own store does not re-verify from genesis: it was altered."""


class UnknownOriginError(ValidatorError):
    """An add-checkpoint request for a log this witness does not know."""


class CheckpointUnavailableError(ValidatorError):
    """No final head yet, or the final head lacks a quorum of checkpoint signatures."""
