"""Blocks: the signed header committing to a run of sealed events, and how one is built.

Wire format per the brief: `block_hash` = SHA-256(JCS(header)); the sealer signs the 32 raw
bytes of that hash (Ed25519); `log_root` is the RFC 6962 root over every event sealed so far.
Semantics, and what a validator checks: docs/chain.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from shared.admission import (
    PendingSeenEvents,
    SeenEvents,
    SignatureCheck,
    SignerRegistry,
    StandingVerdicts,
    admit,
    apply_sealed_event,
)
from shared.canonical import MAX_SAFE_INTEGER, canonicalize, parse_json, read_canonical
from shared.crypto import (
    EncodingError,
    SignatureError,
    SigningKey,
    b64url_decode,
    b64url_encode,
    verify_signature,
)
from shared.envelope import ParsedEvent, verify_event
from shared.errors import VerificationError
from shared.events import DidKey, HexDigest, Timestamp, parse_timestamp
from shared.genesis import verify_genesis_event
from shared.merkle import CompactRange, StoredNode, leaf_hash
from shared.topics import INPUT_TOPICS

__all__ = [
    "BLOCK_VERSION",
    "GENESIS_PREV_HASH",
    "Block",
    "BlockBuilder",
    "BlockFormatError",
    "BlockHashError",
    "BlockHeader",
    "BlockSignatureError",
    "ChainError",
    "PartitionKey",
    "SafeCount",
    "SourceOffsetError",
    "SourceRange",
    "block_from_json",
    "block_hash",
    "block_to_json",
    "build_genesis_block",
    "event_positions",
    "format_timestamp",
    "read_block",
    "seal_block",
    "verify_block_signature",
]

BLOCK_VERSION: Final = 1
GENESIS_PREV_HASH: Final = "0" * 64
PartitionKey = tuple[str, int]
#: A height, size, count, partition or offset: 0 ... 2**53 - 1 (ADR 0009, ADR 0021). A larger
#: integer has no RFC 8785 form, so a header holding one could not even be hashed (and a
#: height beyond 2**63 - 1 not stored): it is not a block, whoever sent it.
SafeCount = Annotated[StrictInt, Field(ge=0, le=MAX_SAFE_INTEGER)]
_SafeInt = Annotated[StrictInt, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]


class ChainError(VerificationError):
    """A block, or the chain it extends, fails verification; `height` names the block."""


class BlockFormatError(ChainError):
    """The bytes are not a block: not JSON, a member missing or extra, a value of a wrong type."""


class BlockHashError(ChainError):
    """`block_hash` is not SHA-256(JCS(header)). Evidence: claimed vs recomputed."""


class BlockSignatureError(ChainError):
    """The sealer's signature over `block_hash` does not verify for the genesis sealer."""


class SourceOffsetError(ChainError):
    """The source runs are not well formed: an unknown topic, offsets going back or
    overlapping, a count other than event_count, or runs not merged where they touch."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceRange(_Model):
    """A run of consecutive offsets of one partition, every one of them an event of the block.

    The block's events are its runs, concatenated in order; an offset missing between two
    runs of a partition (here or in earlier blocks) is an event the sealer rejected.
    """

    topic: StrictStr
    partition: SafeCount
    first_offset: SafeCount
    last_offset: SafeCount

    @model_validator(mode="after")
    def _not_reversed(self) -> Self:
        if self.last_offset < self.first_offset:
            raise ValueError("last_offset is before first_offset")
        return self

    @property
    def size(self) -> int:
        """How many events the run holds."""
        return self.last_offset - self.first_offset + 1


class BlockHeader(_Model):
    """What the sealer signs (through its hash): the block's place in the chain and the log."""

    version: _SafeInt  # any other than 1 is the chain's BlockHeaderError, not a format error
    chain_id: StrictStr
    height: SafeCount
    prev_hash: HexDigest
    tree_size: SafeCount
    log_root: HexDigest
    event_count: SafeCount
    sources: tuple[SourceRange, ...]
    sealed_at: Timestamp
    sealer: DidKey


class Block(_Model):
    """A header, its hash, the sealer's signature, and the sealed events in leaf order."""

    header: BlockHeader
    block_hash: HexDigest
    signature: StrictStr
    events: tuple[dict[str, Any], ...]


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as the builder writes `sealed_at`."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime names no instant; pass an aware one")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def block_hash(header: BlockHeader) -> bytes:
    """SHA-256 of the RFC 8785 bytes of the header: what the sealer signs."""
    return hashlib.sha256(canonicalize(header.model_dump(mode="json"))).digest()


def seal_block(
    header: BlockHeader, events: Sequence[Mapping[str, Any]], sealer_key: SigningKey
) -> Block:
    """Hash and sign `header` with the sealer's key; `events` are the block's, in leaf order."""
    digest = block_hash(header)
    return Block.model_validate(
        {
            "header": header,
            "block_hash": digest.hex(),
            "signature": b64url_encode(sealer_key.sign(digest)),
            "events": tuple(events),  # validated as dicts: pydantic copies each one
        }
    )


def verify_block_signature(block: Block, sealer_did: str) -> None:
    """Check that `block_hash` is the header's hash and that `sealer_did` signed it.

    The signature covers the header only through `block_hash`, so both are checked: a valid
    signature over a hash the header does not have would prove nothing.
    """
    height = block.header.height
    computed = block_hash(block.header).hex()
    if computed != block.block_hash:
        raise BlockHashError(
            "block_hash is not the SHA-256 of the canonical header",
            expected=block.block_hash,
            computed=computed,
            height=height,
        )
    try:
        verify_signature(
            sealer_did, bytes.fromhex(block.block_hash), b64url_decode(block.signature)
        )
    except (SignatureError, EncodingError) as exc:
        raise BlockSignatureError(
            f"the block is not signed by the sealer: {exc}", sealer=sealer_did, height=height
        ) from exc


def block_to_json(block: Block, *, leaves: Sequence[bytes] | None = None) -> bytes:
    """The block as compact UTF-8 JSON, members sorted, each event written as its RFC 8785
    bytes (the Merkle leaf): equal blocks give equal bytes, and `read_block` finds each
    event's leaf in them without encoding it again.

    `leaves` are the events' canonical bytes when the caller has them (the builder does);
    otherwise each event is canonicalised here. The header and signature are written as
    `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes them, the
    form blocks have always had; events without floats were always written so, since JCS and
    that encoder agree on them (shared.canonical).
    """
    if leaves is None:
        leaves = [canonicalize(event) for event in block.events]
    elif len(leaves) != len(block.events):
        raise ValueError("one leaf per event of the block")
    return b"".join(
        (
            b'{"block_hash":',
            _compact(block.block_hash),
            b',"events":[',
            b",".join(leaves),
            b'],"header":',
            _compact(block.header.model_dump(mode="json")),
            b',"signature":',
            _compact(block.signature),
            b"}",
        )
    )


def _compact(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def block_from_json(data: bytes | str) -> Block:
    """Parse a block strictly (no member missing or extra); raise `BlockFormatError`."""
    return read_block(data)[0]


def read_block(data: bytes | str) -> tuple[Block, tuple[bytes, ...] | None]:
    """Parse a block strictly, and give the RFC 8785 bytes of its events (the Merkle leaves,
    in order) when `data` holds them as such: a verifier then hashes them directly. The
    leaves are None when `data` is any other JSON form of a block (`block_from_json` of it is
    then the general parse's, and a verifier canonicalises each event)."""
    text = data if isinstance(data, str) else _utf8_or_none(data)
    read = None if text is None else _read_written_form(text)
    if read is not None:
        return read
    try:
        block = Block.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BlockFormatError(f"not a block: {where}: {first['msg']}") from None
    _check_strict_json(data)
    return block, None


def _check_strict_json(data: bytes | str) -> None:
    """Raise `BlockFormatError` unless `data` is strict JSON (`shared.canonical.parse_json`):
    each member name once at every depth, no NaN or Infinity.

    The general parse keeps the last of repeated names, another parser the first: an event
    spelt so in a block would mean one thing to this validator and another to an auditor, and
    the sealer rejects its Kafka value as `malformed`. (The written form never repeats a
    name: `read_canonical` establishes that.) Checked once the block parsed, so within the
    general parse's depth: no deeper than the reader recurses."""
    try:
        parse_json(data)
    except ValueError as exc:
        raise BlockFormatError(f"not a block: not strict JSON: {exc}") from None


def _utf8_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # the general parse gives the verdict


def _read_written_form(text: str) -> tuple[Block, tuple[bytes, ...]] | None:
    """The block and its leaves if `text` is exactly what `block_to_json` writes, else None.

    Each member is read by `read_canonical`, so every value read is exactly its text's RFC
    8785 form; the members come in `block_to_json`'s order and nothing else is there, so the
    general parse would read the same values (a JSON object of exactly Block's members). The
    header and the top level are then validated as the general parse validates them.
    """
    fields: dict[str, object] = {}
    position = 0
    for name in ("block_hash", "events", "header", "signature"):
        opening = ("{" if name == "block_hash" else ",") + f'"{name}":'
        if not text.startswith(opening, position):
            return None
        position += len(opening)
        if name == "events":
            events = _read_events(text, position)
            if events is None:
                return None
            fields[name], leaves, position = events
            continue
        read = read_canonical(text, position)
        if read is None:
            return None
        fields[name], position = read
    if text[position:] != "}":
        return None
    try:
        block = Block.model_validate({**fields, "events": ()})
    except ValidationError:
        return None  # the general parse says why
    # The events were read as JSON objects, which is all Block's validation checks of them.
    return block.model_copy(update={"events": fields["events"]}), leaves


def _read_events(
    text: str, position: int
) -> tuple[tuple[dict[str, Any], ...], tuple[bytes, ...], int] | None:
    """The events array at `position`, each event read as `_read_written_form` reads a
    member, with its text as its leaf; and where the array ends."""
    if not text.startswith("[", position):
        return None
    position += 1
    events: list[dict[str, Any]] = []
    leaves: list[bytes] = []
    if text.startswith("]", position):
        return (), (), position + 1
    while True:
        read = read_canonical(text, position)
        if read is None or type(read[0]) is not dict:
            return None
        events.append(read[0])
        leaves.append(text[position : read[1]].encode("utf-8"))
        position = read[1] + 1
        separator = text[read[1] : position]
        if separator == "]":
            return tuple(events), tuple(leaves), position
        if separator != ",":
            return None


def build_genesis_block(
    genesis_event: Mapping[str, Any], sealer_key: SigningKey, sealed_at: datetime
) -> Block:
    """Height 0: the admin-signed genesis event as its one leaf, sealed by the genesis sealer."""
    config = verify_genesis_event(dict(genesis_event))
    if sealer_key.did != config.sealer:
        raise ValueError(f"genesis names sealer {config.sealer}, not {sealer_key.did}")
    header = BlockHeader(
        version=BLOCK_VERSION,
        chain_id=config.chain_id,
        height=0,
        prev_hash=GENESIS_PREV_HASH,
        tree_size=1,
        log_root=leaf_hash(canonicalize(dict(genesis_event))).hex(),
        event_count=1,
        sources=(),  # genesis is the chain's anchor, not an event read from Kafka
        sealed_at=format_timestamp(sealed_at),
        sealer=sealer_key.did,
    )
    return seal_block(header, [genesis_event], sealer_key)


class BlockBuilder:
    """Admits events into the next block, in leaf order, and produces its header.

    Used by the sealer (which supplies the events, the time and its key) and re-run by the
    chain verifier over a received block, so both apply the same rules the same way. The
    inputs are never modified: the advanced log, registry and offsets are the builder's own.
    """

    def __init__(
        self,
        *,
        previous: BlockHeader,
        log: CompactRange,
        registry: SignerRegistry,
        seen: SeenEvents,
        last_offsets: Mapping[PartitionKey, int],
        sealed_at: datetime,
        check_signature: SignatureCheck = verify_event,
    ) -> None:
        # A sealer whose clock stepped back keeps sealing at the previous block's time:
        # `sealed_at` never decreases along the chain.
        moment = max(sealed_at.astimezone(UTC), parse_timestamp(previous.sealed_at))
        self.previous = previous
        self.height = previous.height + 1
        self.moment = moment
        self.log = log.copy()
        self.registry = registry
        self.last_offsets = dict(last_offsets)
        self.byte_size = 0
        self.events: list[dict[str, Any]] = []
        #: The admitted events' RFC 8785 bytes, in leaf order (`block_to_json(leaves=...)`).
        self.leaves: list[bytes] = []
        self.leaf_hashes: list[bytes] = []
        self.nodes: list[StoredNode] = []
        self._seen = PendingSeenEvents(seen)
        self._check_signature = check_signature
        #: `standing_verdict`s for this registry at `moment` (a new mapping per registry).
        self._verdicts: StandingVerdicts = {}
        self._runs: list[list[Any]] = []  # [topic, partition, first_offset, last_offset]

    @property
    def event_count(self) -> int:
        """Events admitted so far."""
        return len(self.events)

    @property
    def dedup_keys(self) -> list[tuple[str, str]]:
        """The `(source, id)` of every admitted event: record them once the block is stored."""
        return list(self._seen.pending)

    def admit(
        self, event: ParsedEvent | bytes, *, topic: str, partition: int, offset: int
    ) -> ParsedEvent:
        """Admit one event read at (topic, partition, offset) as the block's next leaf.

        Raises `EventRejected` (nothing changes: the sealer reports it and reads on), or
        `ValueError` if the offset does not move forward (a consumer bug, never an input's).
        """
        last = self.last_offsets.get((topic, partition), -1)
        if offset <= last:
            raise ValueError(f"{topic}/{partition}: offset {offset} after {last} goes back")
        parsed = admit(
            event,
            topic=topic,
            registry=self.registry,
            seen=self._seen,
            at=self.moment,
            check_signature=self._check_signature,
            verdicts=self._verdicts,
        )
        digest = leaf_hash(parsed.leaf_bytes)
        self.nodes.extend(self.log.append(digest))
        self.leaf_hashes.append(digest)
        self._seen.add(parsed.dedup_key)
        registry = apply_sealed_event(self.registry, parsed, height=self.height)
        if registry is not self.registry:  # an identity event changed who may sign what
            self.registry = registry
            self._verdicts = {}
        self.events.append(parsed.event)
        self.leaves.append(parsed.leaf_bytes)
        self.byte_size += len(parsed.leaf_bytes)
        self.last_offsets[(topic, partition)] = offset
        run = self._runs[-1] if self._runs else None
        if run is not None and (run[0], run[1], run[3] + 1) == (topic, partition, offset):
            run[3] = offset
        else:
            self._runs.append([topic, partition, offset, offset])
        return parsed

    def sources(self) -> tuple[SourceRange, ...]:
        """The runs of offsets the admitted events came from, in leaf order."""
        return tuple(
            SourceRange(topic=topic, partition=partition, first_offset=first, last_offset=last)
            for topic, partition, first, last in self._runs
        )

    def header(self, *, sealer: str) -> BlockHeader:
        """The header of the block holding the events admitted so far."""
        return BlockHeader(
            version=BLOCK_VERSION,
            chain_id=self.previous.chain_id,
            height=self.height,
            prev_hash=block_hash(self.previous).hex(),
            tree_size=self.log.size,
            log_root=self.log.root().hex(),
            event_count=self.event_count,
            sources=self.sources(),
            sealed_at=format_timestamp(self.moment),
            sealer=sealer,
        )

    def seal(self, sealer_key: SigningKey) -> Block:
        """The signed block; refuses to seal an empty one (empty blocks are never cut)."""
        if not self.events:
            raise ValueError("an empty block is never sealed")
        return seal_block(self.header(sealer=sealer_key.did), self.events, sealer_key)


def event_positions(
    header: BlockHeader, last_offsets: Mapping[PartitionKey, int]
) -> list[tuple[str, int, int]]:
    """The (topic, partition, offset) of each event of the block: its runs, concatenated.

    Raises `SourceOffsetError` unless the runs hold `event_count` events, name input topics,
    and move every partition forward past `last_offsets` (and past its earlier runs).
    """
    total = sum(run.size for run in header.sources)
    if total != header.event_count:
        raise SourceOffsetError(
            "the source runs do not hold event_count events",
            expected=header.event_count,
            computed=total,
            height=header.height,
        )
    last = dict(last_offsets)
    positions: list[tuple[str, int, int]] = []
    for run in header.sources:
        where = {"topic": run.topic, "partition": run.partition, "height": header.height}
        if run.topic not in INPUT_TOPICS:
            raise SourceOffsetError("not an input topic", expected=list(INPUT_TOPICS), **where)
        previous = last.get((run.topic, run.partition), -1)
        if run.first_offset <= previous:
            raise SourceOffsetError(
                "offsets go back or overlap an earlier run",
                expected=f"> {previous}",
                computed=run.first_offset,
                **where,
            )
        last[(run.topic, run.partition)] = run.last_offset
        positions.extend(
            (run.topic, run.partition, o) for o in range(run.first_offset, run.last_offset + 1)
        )
    return positions
