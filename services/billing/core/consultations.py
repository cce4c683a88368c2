"""What billing reads out of one followed block: its consultations, each with the signer
registry as of its own place in the chain, and the registry after the block.

Pure. The block has been followed (`shared.follower.BlockFollower`: its place in the chain,
the sealer's signature and its log root checked); its events were admitted by the sealer, so
they are not verified again here. Walking the events in leaf order, identity events change
the registry exactly as admission changed it (`shared.admission.apply_sealed_event`), and a
consultation sees the registry with every identity event sealed before it, including the
earlier ones of its own block: the registry the sealer admitted it under. Only consultations
read from `clinical.events` (the topic the block's source runs give their offset) are
billing's; the same type on another topic is counted and left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.admission import SignerRegistry, apply_sealed_event
from shared.block import BlockHeader, event_positions
from shared.envelope import parse_event_object
from shared.events.billing import CONSULTATION_COMPLETED
from shared.events.identity import IDENTITY_SCHEMAS
from shared.follower import FollowedBlock
from shared.topics import CLINICAL_EVENTS

__all__ = ["BlockConsultations", "SealedConsultation", "consultations_of"]


@dataclass(frozen=True, slots=True)
class SealedConsultation:
    """A consultation event as sealed, and the registry at its place in the chain."""

    source: str
    id: str
    height: int
    leaf_index: int
    registry: SignerRegistry = field(repr=False)
    event: Mapping[str, Any] = field(repr=False)

    @property
    def data(self) -> Any:
        """The consultation's `data`, as the publisher signed it (`bill` validates it)."""
        return self.event.get("data")


@dataclass(frozen=True, slots=True)
class BlockConsultations:
    """A block as billing reads it."""

    consultations: tuple[SealedConsultation, ...]
    #: The registry once the whole block is applied (the same object if nothing changed).
    registry: SignerRegistry = field(repr=False)
    #: Consultation events of the block read from another topic than `clinical.events`.
    elsewhere: int = 0


def consultations_of(
    block: FollowedBlock, header: BlockHeader, registry: SignerRegistry
) -> BlockConsultations:
    """The consultations of `block` (whose header is `header`), starting from `registry`,
    the registry after the previous block.

    Raises `shared.block.SourceOffsetError` when the header's source runs do not give every
    event a place on an input topic (a block the validators refuse as well). The genesis
    block has no source runs: it is the chain's anchor, never an input read from Kafka.
    """
    if header.height == 0:
        return BlockConsultations((), registry)
    topics = [topic for topic, _, _ in event_positions(header, {})]
    found: list[SealedConsultation] = []
    elsewhere = 0
    for event, topic in zip(block.events, topics, strict=True):
        if event.type in IDENTITY_SCHEMAS:
            registry = apply_sealed_event(
                registry, parse_event_object(event.event), height=event.height
            )
        elif event.type == CONSULTATION_COMPLETED:
            if topic != CLINICAL_EVENTS:
                elsewhere += 1
                continue
            found.append(
                SealedConsultation(
                    source=event.source,
                    id=event.id,
                    height=event.height,
                    leaf_index=event.leaf_index,
                    registry=registry,
                    event=event.event,
                )
            )
    return BlockConsultations(tuple(found), registry, elsewhere)
