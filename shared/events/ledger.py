"""Ledger events: the genesis event's type, and the record the sealer writes to `ledger.rejected`.

Blocks (`shared.block`) and attestations (`shared.attestation`) are the ledger's other
messages; they are not CloudEvents. No publisher may use the `org.careledger.ledger.`
namespace (`shared.admission` reserves it): genesis is sealed in block 0, never admitted.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field, StrictInt, StrictStr

from shared.envelope import EventRejected, Reason
from shared.events import EventData
from shared.genesis import GENESIS_EVENT_TYPE
from shared.topics import INPUT_TOPICS

__all__ = ["GENESIS", "LEDGER_TYPE_PREFIX", "RejectionRecorded"]

LEDGER_TYPE_PREFIX: Final = "org.careledger.ledger."
#: Declared with the genesis model in `shared.genesis`; named here with its family.
GENESIS: Final = GENESIS_EVENT_TYPE


class RejectionRecorded(EventData):
    """An event the sealer read and did not admit: the value of a `ledger.rejected` message.

    `topic` is the logical topic it was read from. `raw` is the original Kafka value as text:
    UTF-8 where it decodes, undecodable bytes escaped as `\\xNN`, so the record itself is
    always valid JSON and the evidence survives.
    """

    reason: Reason
    detail: StrictStr
    topic: StrictStr
    partition: StrictInt = Field(ge=0)
    offset: StrictInt = Field(ge=0)
    raw: StrictStr

    @classmethod
    def of(
        cls, rejected: EventRejected, *, topic: str, partition: int, offset: int, raw: bytes
    ) -> RejectionRecorded:
        """The record of `rejected`, raised for the value `raw` read at (topic, partition,
        offset)."""
        if topic not in INPUT_TOPICS:
            raise ValueError(f"{topic!r} is not an input topic (logical names only)")
        return cls(
            reason=rejected.reason,
            detail=rejected.detail,
            topic=topic,
            partition=partition,
            offset=offset,
            raw=raw.decode("utf-8", errors="backslashreplace"),
        )
