"""Builds valid CareLedger chains from deterministic keys, for tests at every layer.

A `ChainFactory` holds a genesis (keys derived from fixed seeds), a chain state and a clock.
`seal(...)` admits events through the real `BlockBuilder` exactly as the sealer does, so every
block it returns verifies; `resign(...)` makes a block with a tampered header that the sealer
nevertheless signed, to reach the checks behind the signature. Reused by the sealer and
validator integration tests, so keep it free of assertions and of pytest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.admission import InMemorySeenEvents
from shared.block import (
    Block,
    BlockBuilder,
    BlockHeader,
    SourceRange,
    block_to_json,
    build_genesis_block,
    format_timestamp,
    seal_block,
)
from shared.canonical import canonicalize
from shared.chain import ChainState, ChainVerifier
from shared.crypto import SigningKey
from shared.envelope import build_event, encode_event, sign_event, uuid7
from shared.events import EventData
from shared.genesis import GenesisConfig, PublisherGrant, ServiceDIDs, build_genesis_event
from shared.merkle import leaf_hash
from shared.topics import BILLING_EVENTS, CLINICAL_EVENTS, IDENTITY_EVENTS, RECORDS_EVENTS

#: Everyone the factory has a key for. Only some are in genesis: `publisher-2` and
#: `stranger` are unknown until an identity event registers them (or forever).
ACTORS = (
    "admin",
    "sealer",
    "validator-1",
    "validator-2",
    "validator-3",
    "identity",
    "records",
    "billing",
    "authority",
    "publisher",
    "publisher-2",
    "practitioner",
    "stranger",
)
CLINICAL_TYPE = "org.careledger.clinical.consultation.completed.v1"
GENESIS_TIME = datetime(2026, 1, 1, tzinfo=UTC)
# The topic each signer publishes on when a test does not say.
_HOME_TOPIC = {
    "identity": IDENTITY_EVENTS,
    "records": RECORDS_EVENTS,
    "billing": BILLING_EVENTS,
}


def key_for(name: str, *, chain_id: str = "careledger-test") -> SigningKey:
    """The deterministic key of an actor (different chains get different keys)."""
    return SigningKey.from_seed(hashlib.sha256(f"{chain_id}/{name}".encode()).digest())


@dataclass(frozen=True, slots=True)
class Submission:
    """An event as the sealer reads it: the Kafka value and where it was read."""

    value: bytes
    topic: str
    partition: int
    offset: int


@dataclass
class ChainFactory:
    """A growing valid chain; every method is deterministic for given arguments."""

    chain_id: str = "careledger-test"
    block_interval: timedelta = timedelta(seconds=1)
    keys: dict[str, SigningKey] = field(init=False)
    config: GenesisConfig = field(init=False)
    genesis_event: dict[str, Any] = field(init=False)
    blocks: list[Block] = field(init=False)
    state: ChainState = field(init=False)
    seen: InMemorySeenEvents = field(init=False)
    _next_offset: dict[tuple[str, int], int] = field(init=False, default_factory=dict)
    _events_made: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.keys = {name: key_for(name, chain_id=self.chain_id) for name in ACTORS}
        did = {name: key.did for name, key in self.keys.items()}
        self.config = GenesisConfig(
            chain_id=self.chain_id,
            created_at=_rfc3339(GENESIS_TIME),
            admin=did["admin"],
            sealer=did["sealer"],
            validators=(did["validator-1"], did["validator-2"], did["validator-3"]),
            quorum=2,
            services=ServiceDIDs(
                identity=did["identity"], records=did["records"], billing=did["billing"]
            ),
            authorities=(did["authority"],),
            publishers=(
                PublisherGrant(
                    did=did["publisher"],
                    name="publisher-demo",
                    topic=CLINICAL_EVENTS,
                    types=("org.careledger.clinical.*",),
                ),
            ),
        )
        self.genesis_event = build_genesis_event(
            self.config, self.keys["admin"], event_id=uuid7(0, bytes(10))
        )
        genesis = build_genesis_block(self.genesis_event, self.keys["sealer"], GENESIS_TIME)
        self.blocks = [genesis]
        self.seen = InMemorySeenEvents()
        # A sealer starts the same way: its own genesis block, verified, gives the first state.
        self.state = ChainVerifier(seen=self.seen).verify_block(genesis).state

    def did(self, name: str) -> str:
        """The DID of an actor."""
        return self.keys[name].did

    def event(
        self,
        signer: str = "publisher",
        event_type: str = CLINICAL_TYPE,
        data: Mapping[str, Any] | EventData | None = None,
        *,
        event_id: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """A signed event; ids are fresh UUIDv7s unless given."""
        self._events_made += 1
        if isinstance(data, EventData):
            data = data.model_dump(mode="json", exclude_none=True)
        unsigned = build_event(
            source=source or f"urn:careledger:test:{signer}",
            type=event_type,
            id=event_id or uuid7(self._events_made, self._events_made.to_bytes(10, "big")),
            time="2026-01-01T00:00:00Z",
            data=dict(data or {"n": self._events_made}),
        )
        return sign_event(unsigned, self.keys[signer])

    def identity_event(
        self, event_type: str, data: Mapping[str, Any] | EventData
    ) -> dict[str, Any]:
        """An identity event signed by the identity service (changes the registry once sealed)."""
        return self.event("identity", event_type, data)

    def submit(
        self, event: Mapping[str, Any], *, topic: str | None = None, partition: int = 0
    ) -> Submission:
        """Place an event at the next offset of a partition (its signer's home topic)."""
        if topic is None:
            names = [n for n, k in self.keys.items() if k.did == event.get("signer")]
            topic = _HOME_TOPIC.get(names[0] if names else "", CLINICAL_EVENTS)
        offset = self._next_offset.get((topic, partition), 0)
        self._next_offset[(topic, partition)] = offset + 1
        return Submission(encode_event(event), topic, partition, offset)

    def seal(self, items: Iterable[Mapping[str, Any] | Submission]) -> Block:
        """Admit the items in order as the next block and append it to the chain.

        Raises `EventRejected` if one is not admissible: use it to build valid chains.
        """
        block, builder = self._build(items)
        self.state = self.state.advance(builder, block.header)
        for key in builder.dedup_keys:
            self.seen.add(key)
        self.blocks.append(block)
        return block

    def assemble(
        self,
        items: Iterable[Mapping[str, Any] | Submission],
        *,
        sealed_at: datetime | None = None,
    ) -> Block:
        """The next block holding exactly these events, with a consistent header, signed by
        the sealer, but with no admission check: a sealer that lets anything through. The
        chain is not extended. (Computed without `BlockBuilder`, as a cross-check of it.)"""
        submissions = [i if isinstance(i, Submission) else self.submit(i) for i in items]
        events = [json.loads(item.value) for item in submissions]
        log = self.state.log.copy()
        runs: list[SourceRange] = []
        for item, event in zip(submissions, events, strict=True):
            log.append(leaf_hash(canonicalize(event)))
            last = runs[-1] if runs else None
            if last and (last.topic, last.partition, last.last_offset + 1) == (
                item.topic,
                item.partition,
                item.offset,
            ):
                runs[-1] = last.model_copy(update={"last_offset": item.offset})
            else:
                runs.append(
                    SourceRange(
                        topic=item.topic,
                        partition=item.partition,
                        first_offset=item.offset,
                        last_offset=item.offset,
                    )
                )
        when = sealed_at or GENESIS_TIME + self.block_interval * len(self.blocks)
        header = BlockHeader(
            version=1,
            chain_id=self.chain_id,
            height=self.state.head.height + 1,
            prev_hash=self.state.head_hash,
            tree_size=log.size,
            log_root=log.root().hex(),
            event_count=len(events),
            sources=tuple(runs),
            sealed_at=format_timestamp(when),
            sealer=self.did("sealer"),
        )
        return seal_block(header, events, self.keys["sealer"])

    def _build(self, items: Iterable[Mapping[str, Any] | Submission]) -> tuple[Block, BlockBuilder]:
        submissions = [i if isinstance(i, Submission) else self.submit(i) for i in items]
        when = GENESIS_TIME + self.block_interval * len(self.blocks)
        builder = self.state.open_block(sealed_at=when, seen=self.seen)
        for item in submissions:
            builder.admit(
                item.value, topic=item.topic, partition=item.partition, offset=item.offset
            )
        return builder.seal(self.keys["sealer"]), builder

    def seal_many(self, blocks: int, events_per_block: int, signer: str = "publisher") -> None:
        """Append `blocks` blocks of fresh events by `signer`."""
        for _ in range(blocks):
            self.seal(self.event(signer) for _ in range(events_per_block))

    def resign(
        self,
        block: Block,
        *,
        events: Sequence[Mapping[str, Any]] | None = None,
        **header_changes: Any,
    ) -> Block:
        """`block` with header fields (and/or events) replaced, hashed and signed by the sealer."""
        header = BlockHeader.model_validate({**block.header.model_dump(), **header_changes})
        return seal_block(header, block.events if events is None else events, self.keys["sealer"])

    def serialized(self) -> list[bytes]:
        """The chain as the JSON each block travels in."""
        return [block_to_json(block) for block in self.blocks]


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
