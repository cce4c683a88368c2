"""Errors of the sealer service."""

from __future__ import annotations

from shared.errors import CareLedgerError


class SealerError(CareLedgerError):
    """Base class of the sealer service's deliberate errors."""


class ChainConflictError(SealerError):
    """The store's head is not the one this block extends: another writer sealed meanwhile,
    or the block was stored already. Never retried: the sealer stops and restarts from the
    store."""


class TransientError(SealerError):
    """The broker or the store failed in a way worth retrying (with back-off)."""


class LeaseLostError(SealerError):
    """Another sealer holds the chain's writer lease (ours expired): stop appending, go to
    standby, and resume from the store if the lease comes back."""


class PartitionRewoundError(SealerError):
    """An input partition delivered an offset before the sealer's position in it: the topic
    was re-created (an embedded broker restarted with a kept store) or truncated. Block
    sources are offsets that only move forward, so the sealer stops rather than skip or
    re-seal anything; an operator decides (new chain, or new topic prefix)."""


class SealerStopped(SealerError):  # noqa: N818 - a signal, not a failure
    """Raised inside the loop when `stop()` interrupts a wait; the open block is dropped
    (its events are read again at the next start)."""


class GenesisMismatchError(SealerError):
    """The stored chain was started from another genesis than the configured one."""


class IngestUnavailableError(SealerError):
    """The HTTP ingest cannot check events now: no chain state yet (a standby, or starting)."""
