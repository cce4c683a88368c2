"""The identity service's view of the chain: at which height each of its events was sealed.

The `FollowedBlockHandler` of `shared.follower`: for every block the follower applies, the
heights of the service's own events (same signer, same `source`) and the follower's position
are stored in one transaction, so a restart resumes exactly after the last block applied.
Genesis roles need nothing here: they hold from height 0.
"""

from __future__ import annotations

import logging
from typing import Generic

from services.identity.ports import IdentityJournal, TxT
from shared.follower import FollowedBlock, FollowerState
from shared.store import UnitOfWork

log = logging.getLogger("careledger.identity")


class SealedHeights(Generic[TxT]):
    """Records the sealing height of the events signed by `signer` with `source`."""

    def __init__(
        self,
        *,
        uow: UnitOfWork[TxT],
        journal: IdentityJournal[TxT],
        signer: str,
        source: str,
    ) -> None:
        self._uow = uow
        self._journal = journal
        self._signer = signer
        self._source = source

    def position(self) -> FollowerState | None:
        saved = self._journal.position()
        return None if saved is None else FollowerState.from_json_value(saved)

    def apply(self, block: FollowedBlock, state: FollowerState) -> None:
        """Idempotent: a height already recorded is never changed."""
        ours = {
            event.id: event.height
            for event in block.events
            if event.signer == self._signer and event.source == self._source
        }
        with self._uow.transaction() as tx:
            changed = self._journal.mark_sealed(tx, ours) if ours else 0
            self._journal.save_position(tx, state.to_json_value())
        if changed:
            log.info("identity changes sealed", extra={"height": block.height, "count": changed})
