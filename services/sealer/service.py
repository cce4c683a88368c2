"""The sealing use case: read events, admit or reject each, cut blocks, store, publish, commit.

Order of effects per block (principle 3, exactly-once sealing): the rejections read so far
are delivered, then the block is stored together with the state after it, its `(source, id)`
keys and the read positions (one transaction), then it is published to `ledger.blocks`, then
the consumer offsets are committed. Nothing before the store counts: a crash anywhere leaves
the store at its last block, from which `recover` resumes.

With a signature pool (ADR 0010) the next batch is read, without waiting, and its signatures
sent to the pool before this batch is admitted; nothing else about it happens early. It is
taken only after this one, in the order read, and dropped with the open block.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from services.sealer.core.cut import CutPolicy
from services.sealer.errors import (
    ChainConflictError,
    GenesisMismatchError,
    LeaseLostError,
    PartitionRewoundError,
    SealerError,
    SealerStopped,
    TransientError,
)
from services.sealer.ports import (
    ChainStore,
    EventSource,
    LedgerPublisher,
    SealedHead,
    SealerMetrics,
    SourceMessage,
    WriterLease,
)
from services.sealer.seen import StoredSeenEvents
from shared.admission import DedupKey, SignatureCheck
from shared.block import Block, BlockBuilder, PartitionKey, block_to_json, build_genesis_block
from shared.canonical import canonicalize
from shared.chain import ChainState, ChainVerifier
from shared.crypto import SigningKey
from shared.envelope import EventRejected, ParsedEvent, parse_event, verify_event
from shared.events import parse_timestamp
from shared.events.ledger import RejectionRecorded
from shared.runtime.signature_pool import (
    PendingVerdicts,
    SignaturePool,
    VerdictCheck,
    signature_input,
)
from shared.sources import utc_now

log = logging.getLogger(__name__)

T = TypeVar("T")


class NullMetrics:
    """`SealerMetrics` that counts nothing (tests that do not look)."""

    def sealed(self, events: int, *, height: int, cut_seconds: float) -> None:
        pass

    def published_to_sealed(self, seconds: Sequence[float]) -> None:
        pass

    def rejected(self, reason: str) -> None:
        pass

    def at_height(self, height: int) -> None:
        pass

    def leading(self, holds_lease: bool) -> None:
        pass


def _parse(message: SourceMessage) -> ParsedEvent | EventRejected:
    """The parsed event, or why it cannot be admitted (raised in order, when it is taken)."""
    try:
        return parse_event(message.value)
    except EventRejected as exc:
        return exc


@dataclass(frozen=True, slots=True)
class _Batch:
    """Messages read together, parsed, and (with a pool) their signatures being checked."""

    messages: list[SourceMessage]
    parsed: list[ParsedEvent | EventRejected]
    #: The pool's verdicts, one per `ParsedEvent` of `parsed` in order; None: check in process.
    verdicts: PendingVerdicts | None


def publish_to_seal_seconds(block: Block) -> list[float]:
    """How long each event of `block` waited, from its publisher's `time` to the block's
    `sealed_at`; a publisher's clock ahead of ours would give a negative wait: 0 instead.

    Events of one block often share their `time` (a batch published at once), so each
    distinct value is parsed once.
    """
    sealed_at = parse_timestamp(block.header.sealed_at)
    waits: dict[object, float] = {}
    out = []
    for event in block.events:
        published = event.get("time")
        wait = waits.get(published)
        if wait is None:
            # Admission checked `time` (RFC 3339 UTC): every sealed event has a valid one.
            moment = parse_timestamp(str(published))
            wait = waits[published] = max(0.0, (sealed_at - moment).total_seconds())
        out.append(wait)
    return out


class Sealer:
    """Seals the input topics into the chain; `run` until `stop`."""

    def __init__(
        self,
        *,
        store: ChainStore,
        source: EventSource,
        publisher: LedgerPublisher,
        key: SigningKey,
        genesis_event: Mapping[str, Any],
        policy: CutPolicy,
        metrics: SealerMetrics | None = None,
        lease: WriterLease | None = None,
        lease_renew_every: float = 3.0,
        standby_poll: float = 1.0,
        wall_clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        batch_size: int = 500,
        idle_wait: float = 0.5,
        publish_timeout: float = 10.0,
        max_backoff: float = 5.0,
        signatures: SignaturePool | None = None,
    ) -> None:
        self._store = store
        self._source = source
        self._publisher = publisher
        self._key = key
        self._genesis_event = dict(genesis_event)
        self._policy = policy
        self._metrics: SealerMetrics = metrics or NullMetrics()
        self._lease = lease
        self._lease_renew_every = lease_renew_every
        self._standby_poll = standby_poll
        self._lease_renewed_at = 0.0
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._batch_size = batch_size
        self._idle_wait = idle_wait
        self._publish_timeout = publish_timeout
        self._max_backoff = max_backoff
        self._seen = StoredSeenEvents(store)
        self._stopping = threading.Event()
        self._state: ChainState | None = None
        self._builder: BlockBuilder | None = None
        self._opened_at: float | None = None
        self._positions: dict[PartitionKey, int] = {}
        # With a pool, the next batch is read and sent to it before this one is admitted
        # (ADR 0010): the workers check N+1 while this thread admits N.
        self._signatures = signatures
        self._check = VerdictCheck()
        self._ahead: _Batch | None = None
        #: Why the sealer is not making progress right now (None: it is), for /readyz.
        self.trouble: str | None = "not started"

    @property
    def state(self) -> ChainState | None:
        """The state after the last stored block (None before `recover`)."""
        return self._state

    def stop(self) -> None:
        """Ask `run` (and any retry wait) to return; safe from any thread, idempotent."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # --- start -------------------------------------------------------------------------

    def recover(self) -> SealedHead:
        """Load the head (sealing genesis on an empty store), re-publish the last block and
        open the input topics just past everything sealed or rejected before it."""
        self._drop_ahead()
        head = self._retry(self._store.head, "read the chain store")
        if head is None:
            head = self._seal_genesis()
        elif canonicalize(dict(head.state.genesis_event)) != canonicalize(self._genesis_event):
            raise GenesisMismatchError("the stored chain has another genesis than the one given")
        self._state = head.state
        self._metrics.at_height(head.height)
        positions = {key: offset + 1 for key, offset in head.state.last_offsets.items()}
        for key, offset in head.read_positions.items():
            positions[key] = max(offset, positions.get(key, 0))
        self._positions = positions
        self._retry(lambda: self._publish(head.height, head.block), "re-publish the last block")
        self._retry(lambda: self._source.open(positions), "open the input topics")
        log.info("sealer resumes", extra={"height": head.height, "partitions": len(positions)})
        self.trouble = None
        return head

    def _seal_genesis(self) -> SealedHead:
        block = build_genesis_block(self._genesis_event, self._key, self._wall_clock())
        state = ChainVerifier(trusted_genesis=self._genesis_event).verify_block(block).state
        key = (str(self._genesis_event["source"]), str(self._genesis_event["id"]))
        self._retry(lambda: self._append(block, state, [key], {}), "store the genesis block")
        log.info("genesis sealed", extra={"block_hash": block.block_hash})
        return SealedHead(state=state, block=block_to_json(block), read_positions={})

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        """Take the writer lease (standby until then), `recover`, then seal until `stop`;
        a lost lease means standby again. The open block is dropped, never half-sealed."""
        try:
            while not self._stopping.is_set():
                if not self._take_lease():
                    continue
                try:
                    self.recover()
                    while not self._stopping.is_set():
                        self.step()
                except LeaseLostError:
                    log.warning("writer lease lost: standby")
                    self._metrics.leading(False)
                    self._reset()
        except SealerStopped:
            pass
        finally:
            self._reset()
            if self._lease is not None:
                try:
                    self._lease.release()
                except TransientError:
                    log.warning("writer lease not released; it expires on its own")

    def _reset(self) -> None:
        self._drop_ahead()
        self._builder = None
        self._opened_at = None
        self._state = None

    def _drop_ahead(self) -> None:
        """Forget the batch read ahead, with the open block: `recover` reads it again from the
        stored positions, so nothing of it is admitted out of order or twice."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead.verdicts is not None:
            ahead.verdicts.abandon()

    def _take_lease(self) -> bool:
        """True once this sealer holds the lease; otherwise wait a little in standby."""
        if self._lease is None:
            return True
        if self._retry(self._lease.acquire, "take the writer lease"):
            self._lease_renewed_at = self._monotonic()
            self._metrics.leading(True)
            return True
        self._metrics.leading(False)
        if self.trouble is None or not self.trouble.startswith("standby"):
            log.info("standby: another sealer holds the writer lease")
        self.trouble = "standby: another sealer holds the writer lease"
        self._stopping.wait(self._standby_poll)
        return False

    def _renew_lease(self) -> None:
        if self._lease is None:
            return
        now = self._monotonic()
        if now - self._lease_renewed_at < self._lease_renew_every:
            return
        if not self._retry(self._lease.acquire, "renew the writer lease"):
            raise LeaseLostError("another sealer holds the writer lease")
        self._lease_renewed_at = now

    def step(self) -> None:
        """Read one batch (waiting at most what the open block may still wait), admit or
        reject each message, and cut whenever the policy says so.

        With a signature pool, the batch read ahead at the previous step (if any) is the one
        admitted, and the next one is read (without waiting) and sent to the pool first, so
        its signatures are checked while this one is admitted. Messages are still taken in
        the order read, one batch after the other: only where signatures are checked moves.
        """
        self._renew_lease()
        batch, self._ahead = self._ahead, None
        if batch is None:
            wait = self._policy.wait_budget(
                opened_at=self._opened_at, now=self._monotonic(), idle=self._idle_wait
            )
            batch = self._read(wait)
        if self._signatures is not None and batch.messages:
            self._ahead = self._read_ahead()
        # The keys the batch claims feed one store query, and admission works on the parsed
        # events (each value is parsed once, in `_read`).
        keys = [event.dedup_key for event in batch.parsed if isinstance(event, ParsedEvent)]
        self._retry(lambda: self._seen.prefetch(keys), "read sealed keys")
        verdicts = iter(batch.verdicts.result()) if batch.verdicts is not None else None
        for message, event in zip(batch.messages, batch.parsed, strict=True):
            if verdicts is not None and isinstance(event, ParsedEvent):
                self._check.expect(event, next(verdicts))
            self._take(message, event)
            self._cut_if_due()
        self._cut_if_due()

    def _read(self, timeout: float) -> _Batch:
        messages = self._retry(
            lambda: self._source.poll(max_messages=self._batch_size, timeout=timeout),
            "read the input topics",
        )
        return self._batch(messages)

    def _read_ahead(self) -> _Batch | None:
        """The messages already fetched, sent to the pool; None if there are none (or the
        broker is away: the next step's own read retries, so nothing is waited for here)."""
        try:
            messages = self._source.poll(max_messages=self._batch_size, timeout=0.0)
        except TransientError:
            return None
        return self._batch(messages) if messages else None

    def _batch(self, messages: list[SourceMessage]) -> _Batch:
        parsed = [_parse(message) for message in messages]
        pending = None
        if self._signatures is not None and messages:
            inputs = [signature_input(event) for event in parsed if isinstance(event, ParsedEvent)]
            pending = self._signatures.submit(inputs)
        return _Batch(messages, parsed, pending)

    def _take(self, message: SourceMessage, event: ParsedEvent | EventRejected) -> None:
        self._check_position(message)
        if self._builder is not None and self._policy.overflows(
            event_count=self._builder.event_count,
            byte_size=self._builder.byte_size,
            incoming=len(message.value),  # the Kafka value is the canonical event (leaf) bytes
        ):
            self.cut()
        state = self._state  # read after any cut: the cut advances it
        if state is None:
            raise SealerError("recover() first")
        builder = self._builder
        if builder is None or builder.event_count == 0:
            # Opened afresh while empty, so `sealed_at` (the admission time) is that of the
            # block's first event, not of a rejected one long before.
            builder = state.open_block(
                sealed_at=self._wall_clock(), seen=self._seen, check_signature=self._check_of()
            )
            self._builder = builder
        try:
            if isinstance(event, EventRejected):
                raise event
            builder.admit(
                event,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
        except EventRejected as exc:
            self._reject(message, exc)
        else:
            if self._opened_at is None:
                self._opened_at = self._monotonic()
        self._positions[(message.topic, message.partition)] = message.offset + 1

    def _check_of(self) -> SignatureCheck:
        return verify_event if self._signatures is None else self._check

    def _check_position(self, message: SourceMessage) -> None:
        where = (message.topic, message.partition)
        expected = self._positions.get(where, 0)
        if message.offset < expected:
            log.error(
                "input partition rewound",
                extra={
                    "topic": where[0],
                    "partition": where[1],
                    "offset": message.offset,
                    "expected": expected,
                },
            )
            raise PartitionRewoundError(
                f"{where[0]}/{where[1]} delivered offset {message.offset}, before {expected}"
            )

    def _reject(self, message: SourceMessage, exc: EventRejected) -> None:
        record = RejectionRecorded.of(
            exc,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            raw=message.value,
        )
        self._publisher.publish_rejection(record.model_dump_json().encode())
        self._metrics.rejected(exc.reason.value)
        log.info(
            "event rejected",
            extra={
                "reason": exc.reason.value,
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
            },
        )

    def _cut_if_due(self) -> None:
        builder = self._builder
        if builder is None or not self._policy.should_cut(
            event_count=builder.event_count,
            byte_size=builder.byte_size,
            opened_at=self._opened_at,
            now=self._monotonic(),
        ):
            return
        self.cut()

    def cut(self) -> Block | None:
        """Seal the open block now (None if it is empty): store, publish, commit."""
        builder, state, opened_at = self._builder, self._state, self._opened_at
        if builder is None or state is None or builder.event_count == 0:
            return None
        block = builder.seal(self._key)
        next_state = state.advance(builder, block.header)
        positions = dict(self._positions)
        keys = builder.dedup_keys
        self._retry(
            lambda: self._publisher.flush(timeout=self._publish_timeout), "deliver rejections"
        )
        self._retry(lambda: self._append(block, next_state, keys, positions), "store the block")
        self._seen.stored(keys)
        self._state = next_state
        self._builder = None
        self._opened_at = None
        height = block.header.height
        self._retry(lambda: self._publish(height, block_to_json(block)), "publish the block")
        self._commit(positions)
        elapsed = self._monotonic() - (opened_at if opened_at is not None else self._monotonic())
        self._metrics.sealed(builder.event_count, height=height, cut_seconds=elapsed)
        self._metrics.published_to_sealed(publish_to_seal_seconds(block))
        log.info(
            "block sealed",
            extra={"height": height, "events": builder.event_count, "block_hash": block.block_hash},
        )
        return block

    # --- effects -----------------------------------------------------------------------

    def _append(
        self,
        block: Block,
        state: ChainState,
        keys: list[DedupKey],
        positions: Mapping[PartitionKey, int],
    ) -> None:
        try:
            self._store.append(block, state, keys, positions)
        except ChainConflictError:
            # A commit whose acknowledgement was lost, retried: the block is there already.
            head = self._store.head()
            if head is None or head.state.head_hash != block.block_hash:
                raise
            log.info("block found stored after a retry", extra={"height": block.header.height})

    def _publish(self, height: int, value: bytes) -> None:
        self._publisher.publish_block(height, value, timeout=self._publish_timeout)

    def _commit(self, positions: Mapping[PartitionKey, int]) -> None:
        try:
            self._source.commit(positions)
        except TransientError as exc:
            # Informational only: the store, not the broker, says where to resume.
            log.warning("offsets not committed", extra={"error": str(exc)})

    def _retry(self, action: Callable[[], T], what: str) -> T:
        """Run `action`, retrying `TransientError` with exponential back-off until it works or
        `stop` is called (then `SealerStopped`). Order is kept: nothing else runs meanwhile."""
        delay = 0.05
        while True:
            if self._stopping.is_set():
                raise SealerStopped(what)
            try:
                result = action()
            except TransientError as exc:
                self.trouble = f"cannot {what}: {exc}"
                log.warning("retrying", extra={"action": what, "error": str(exc), "delay": delay})
                if self._stopping.wait(delay):
                    raise SealerStopped(what) from exc
                delay = min(delay * 2, self._max_backoff)
            else:
                if self.trouble is not None and self._state is not None:
                    self.trouble = None
                return result
