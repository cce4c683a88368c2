"""The records service's view of the chain: who is a practitioner or a registered patient,
and which of its own events are sealed, with the commitments the chain holds.

The `FollowedBlockHandler` of `shared.follower`: for every block the follower applies, the
directory changes (`core.directory`, the admission registry's rules), the marks of the
service's own events and the follower's position are stored in one transaction, so a restart
resumes exactly after the last block applied.
"""

from __future__ import annotations

import logging
from typing import Generic

from services.records.core.directory import follow_identity, touched_dids
from services.records.core.model import SealedMark
from services.records.ports import ChainView, TxT
from shared.events.records import RECORD_CREATED, RECORD_UPDATED
from shared.follower import FollowedBlock, FollowerState, SealedEvent
from shared.genesis import GenesisConfig
from shared.store import UnitOfWork

log = logging.getLogger("careledger.records")

_VERSION_TYPES = frozenset({RECORD_CREATED, RECORD_UPDATED})


class ChainFollowing(Generic[TxT]):
    """Applies followed blocks to the records service's `ChainView`."""

    def __init__(
        self,
        *,
        uow: UnitOfWork[TxT],
        chain: ChainView[TxT],
        genesis: GenesisConfig,
        signer: str,
        source: str,
    ) -> None:
        self._uow = uow
        self._chain = chain
        self._genesis = genesis
        self._signer = signer
        self._source = source

    def position(self) -> FollowerState | None:
        saved = self._chain.position()
        return None if saved is None else FollowerState.from_json_value(saved)

    def apply(self, block: FollowedBlock, state: FollowerState) -> None:
        """Idempotent: a block applied twice leaves the same state."""
        marks = [_mark(event) for event in block.events if self._ours(event)]
        with self._uow.transaction() as tx:
            stored = {
                did: practitioner
                for did in touched_dids(block.events, self._genesis)
                if (practitioner := self._chain.practitioner(did, tx)) is not None
            }
            change = follow_identity(
                block.events,
                genesis=self._genesis,
                practitioners=stored,
                authorities=self._chain.authorities(tx),
            )
            self._chain.apply_block(
                tx,
                practitioners=change.practitioners,
                authorities=change.authorities,
                patients=change.patients,
                marks=marks,
                position=state.to_json_value(),
            )
        if marks or change.practitioners or change.patients:
            log.info(
                "followed block",
                extra={
                    "height": block.height,
                    "sealed": len(marks),
                    "practitioners": len(change.practitioners),
                    "patients": len(change.patients),
                },
            )

    def _ours(self, event: SealedEvent) -> bool:
        return event.signer == self._signer and event.source == self._source


def _mark(event: SealedEvent) -> SealedMark:
    commitment = None
    if event.type in _VERSION_TYPES:
        data = event.event.get("data")
        if isinstance(data, dict) and isinstance(data.get("commitment"), str):
            commitment = data["commitment"]
    return SealedMark(event.id, event.height, commitment)
