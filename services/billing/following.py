"""The billing service's view of the chain: admission's own signer registry, at a height.

The `FollowedBlockHandler` of `shared.follower`: every followed block's identity events go
through `shared.admission.apply_sealed_event`, exactly as the sealer applied them, so billing
can never disagree with the chain about who is a practitioner in good standing or which
publisher may publish consultations. The registry (when a block changed it) and the follower's
position are stored in one transaction; `Directory` holds the current one in memory for the
engine, with the height it is at (the `registry_height` an invoice records).
"""

from __future__ import annotations

import logging
import threading
from typing import Generic

from services.billing.ports import ChainView, TxT
from shared.admission import SignerRegistry, apply_sealed_event, registry_from_genesis
from shared.envelope import parse_event_object
from shared.events.identity import IDENTITY_SCHEMAS
from shared.follower import FollowedBlock, FollowerState
from shared.genesis import GenesisConfig
from shared.store import UnitOfWork

__all__ = ["ChainFollowing", "Directory"]

log = logging.getLogger("careledger.billing")


class Directory:
    """The current signer registry and the chain height it reflects; shared by the follower
    (which replaces it) and the engine (which reads it), so replacement is atomic."""

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

    def replace(self, registry: SignerRegistry, height: int) -> None:
        with self._lock:
            self._current = (registry, height)


class ChainFollowing(Generic[TxT]):
    """Applies followed blocks to the billing service's `ChainView` and `Directory`."""

    def __init__(
        self, *, uow: UnitOfWork[TxT], chain: ChainView[TxT], directory: Directory
    ) -> None:
        self._uow = uow
        self._chain = chain
        self._directory = directory

    def position(self) -> FollowerState | None:
        saved = self._chain.position()
        return None if saved is None else FollowerState.from_json_value(saved)

    def apply(self, block: FollowedBlock, state: FollowerState) -> None:
        """Idempotent: admission's registry rules ignore an identity event applied twice."""
        before, _ = self._directory.current()
        registry = before
        for event in block.events:
            if event.type in IDENTITY_SCHEMAS:
                registry = apply_sealed_event(
                    registry, parse_event_object(event.event), height=event.height
                )
        changed = registry is not before
        with self._uow.transaction() as tx:
            self._chain.save_position(
                tx,
                position=state.to_json_value(),
                height=block.height,
                registry=registry.to_json_value() if changed else None,
            )
        self._directory.replace(registry, block.height)
        if changed:
            log.info("followed identity changes", extra={"height": block.height})
