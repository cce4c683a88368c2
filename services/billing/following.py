"""The billing service's view of the chain: the signer registry it bills with, and the reader
that follows `ledger.blocks` for the engine.

`ChainReader` checks every block exactly as every service's chain follower does (the pure
`shared.follower.BlockFollower`: the block's place in the chain, the sealer's signature, the
log root) and hands each block that extends the chain to the engine (`engine.BillingEngine`,
a `FollowedBlockHandler`). It keeps the reading policy of `shared.follower.kafka.ChainFollower`
(which billing no longer runs: its one consumer of `ledger.blocks` is the faust block stream):
blocks missing before one are looked for once per head by reading the topic again, and any
other fault stops following for good, the component not ready with the reason, until a
restart. `Directory` holds the registry the engine applied last, with its height.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.billing.ports import BillingMetrics, ChainView, TxT
from shared.admission import Role, SignerRegistry, registry_from_genesis
from shared.block import ChainError, read_block
from shared.follower import (
    BlockFollower,
    FollowedBlock,
    FollowedBlockHandler,
    FollowerState,
    MissingBlocksError,
)
from shared.genesis import GenesisConfig

__all__ = ["ChainReader", "Directory", "Reading", "Verdict"]

log = logging.getLogger("careledger.billing")


class Directory:
    """The current signer registry and the chain height it reflects; replaced by the engine
    after each block and read by whoever needs the registry billing has followed."""

    def __init__(self, registry: SignerRegistry, height: int) -> None:
        self._lock = threading.Lock()
        self._current = (registry, height)

    @classmethod
    def load(cls, chain: ChainView[TxT], genesis: GenesisConfig) -> Directory:
        """The registry saved last; genesis's while no followed block changed it, at the
        height the follower reached (0 before the first block)."""
        saved = chain.registry()
        if saved is not None:
            value, height = saved
            return cls(SignerRegistry.from_json_value(value), height)
        position = chain.position()
        height = 0 if position is None else FollowerState.from_json_value(position).height
        return cls(registry_from_genesis(genesis), height)

    def current(self) -> tuple[SignerRegistry, int]:
        with self._lock:
            return self._current

    def practitioner_revoked(self, did: str) -> bool:
        """Whether `did`'s practitioner credential is revoked at the height followed."""
        registry, _ = self.current()
        standing = registry.roles_of(did).get(Role.PRACTITIONER)
        return standing is not None and standing.revoked_at is not None

    def replace(self, registry: SignerRegistry, height: int) -> None:
        with self._lock:
            self._current = (registry, height)


class Verdict(StrEnum):
    """What became of one `ledger.blocks` message, and so what the stream does next."""

    APPLIED = "applied"  # billed and stored with the position: ack
    IGNORED = "ignored"  # a copy of a block applied before: ack
    REWIND = "rewind"  # blocks are missing before it: read the topic again from its start
    FAULT = "fault"  # it fails verification: stop following (not acked)


@dataclass(frozen=True, slots=True)
class Reading:
    verdict: Verdict
    #: Why following stopped (FAULT only); heights, hashes and offsets, never event contents.
    reason: str | None = None


class ChainReader:
    """Reads `ledger.blocks` messages, in offset order, for a `FollowedBlockHandler`.

    Not thread-safe: one stream thread calls `read`. A `read` that raises (the handler's
    store is down) applied nothing; the stream calls it again with the same message, and the
    follower starts again from the position the handler stored.
    """

    def __init__(
        self,
        *,
        genesis_event: Mapping[str, Any],
        handler: FollowedBlockHandler,
        metrics: BillingMetrics,
        topic: str,
    ) -> None:
        self._genesis_event = dict(genesis_event)
        self._handler = handler
        self._metrics = metrics
        self._topic = topic
        self._follower: BlockFollower | None = None
        self._rewound_at: int | None = None
        self._failed: str | None = None

    @property
    def failed(self) -> str | None:
        """Why following stopped, or None."""
        return self._failed

    def read(self, value: bytes | None, offset: int) -> Reading:
        """Check the block at `offset` and apply it if it extends the chain."""
        if self._failed is not None:
            return Reading(Verdict.FAULT, self._failed)
        try:
            follower = self._prepare()
        except ChainError as exc:  # a stored state that does not restore: no retry cures it
            return self._fault(exc, None)
        try:
            block, leaves = read_block(value or b"")
            followed = follower.follow(block, leaves=leaves)
        except MissingBlocksError as exc:
            return self._missing(exc, follower, offset)
        except ChainError as exc:
            return self._fault(exc, offset)
        state = follower.state
        if followed is None or state is None:
            return Reading(Verdict.IGNORED)
        return self._apply(followed, dataclasses.replace(state, offset=offset))

    def _missing(self, exc: MissingBlocksError, follower: BlockFollower, offset: int) -> Reading:
        head = -1 if follower.state is None else follower.state.height
        if self._rewound_at == head:
            return self._fault(exc, offset)
        # Blocks missing before this one (a store restored from an older backup, a broker
        # that lost its topic, a group offset of an older topic): read the topic again once
        # per head before calling it a fault.
        self._rewound_at = head
        log.warning(
            "blocks missing; reading the topic from its start",
            extra={"expected": exc.expected, "received": exc.computed},
        )
        return Reading(Verdict.REWIND)

    def _apply(self, followed: FollowedBlock, state: FollowerState) -> Reading:
        try:
            self._handler.apply(followed, state)
        except ChainError as exc:  # source runs that place no event: the block is refused
            self._follower = None
            return self._fault(exc, state.offset)
        except BaseException:
            self._follower = None  # not applied: start again from the stored position
            raise
        self._metrics.follower_height(followed.height)
        return Reading(Verdict.APPLIED)

    def _prepare(self) -> BlockFollower:
        if self._follower is None:
            state = self._handler.position()
            self._follower = BlockFollower(genesis_event=self._genesis_event, state=state)
            self._metrics.follower_height(-1 if state is None else state.height)
        return self._follower

    def _fault(self, exc: ChainError, offset: int | None) -> Reading:
        evidence = {"offset": offset, **exc.evidence()}
        self._metrics.follower_fault()
        where = "the stored position" if offset is None else f"offset {offset} of {self._topic}"
        self._failed = f"following stopped: {where} fails verification: {exc}"
        log.error("block refused; billing stops following here", extra={"evidence": evidence})
        return Reading(Verdict.FAULT, self._failed)
