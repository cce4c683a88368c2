"""The chain follower on Kafka: `ledger.blocks` read with `assign()`, each block checked by the
pure `BlockFollower` and handed to the service's `FollowedBlockHandler`, in order.

The position lives in the service's store with the effects it caused (the handler's
`position()`), so a restarted follower resumes after the last applied block. See
docs/follower.md.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from shared.block import ChainError, read_block
from shared.follower.core import (
    BlockFollower,
    FollowedBlock,
    FollowedBlockHandler,
    FollowerState,
    MissingBlocksError,
)
from shared.kafka import KafkaSettings
from shared.kafka.consume import consume_available, store_position
from shared.runtime.component import NotReadyError
from shared.runtime.metrics import ConsumerLagMetrics, FollowerMetrics
from shared.topics import LEDGER_BLOCKS, TopicNames

__all__ = ["ChainFollower"]

log = logging.getLogger(__name__)

_BATCH = 100
_POLL_SECONDS = 0.2
_MAX_BACKOFF = 5.0
_CONSUMER_OVERRIDES: dict[str, Any] = {"enable.partition.eof": False}


class ChainFollower:
    """A service's follower of the chain, as a Component (`/readyz` shows its state).

    A block that fails verification stops it for good (until a restart): nothing after it is
    applied, the handler keeps the last good state, and the component is not ready.
    """

    def __init__(
        self,
        *,
        genesis_event: Mapping[str, Any],
        handler: FollowedBlockHandler,
        kafka: KafkaSettings,
        topics: TopicNames,
        client_name: str,
        registry: CollectorRegistry,
        name: str = "chain-follower",
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        self.name = name
        self._genesis_event = dict(genesis_event)
        self._handler = handler
        self._kafka = kafka
        self._topic = topics.physical(LEDGER_BLOCKS)
        self._group_id = topics.client_name(client_name)
        self._consumer_factory = consumer_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._trouble: str | None = None
        self._failed: str | None = None
        self._rewound_at: int | None = None
        self._metrics = FollowerMetrics(registry)
        self._lag = ConsumerLagMetrics.of(registry)

    def start(self) -> None:
        self._stop.clear()
        self._trouble = "starting"
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                log.warning("chain follower still applying a block at shutdown")
            self._thread = None

    def check(self) -> None:
        if self._failed is not None:
            raise NotReadyError(self._failed)
        if self._thread is None or not self._thread.is_alive():
            raise NotReadyError("the chain follower is not running")
        if self._trouble is not None:
            raise NotReadyError(self._trouble)

    def _main(self) -> None:
        consumer: Any = None
        backoff = 0.1
        try:
            while not self._stop.is_set():
                try:
                    follower, start = self._prepare()
                    if consumer is None:
                        config = self._kafka.consumer_config(
                            self._group_id,
                            statistics=self._lag.reporter("follower"),
                            **_CONSUMER_OVERRIDES,
                        )
                        consumer = self._consumer_factory(config)
                    consumer.assign([TopicPartition(self._topic, 0, start)])
                except ChainError as exc:  # a stored state that does not restore: no retry
                    self._fault(exc, None)
                    return
                except Exception as exc:
                    self._trouble = f"starting: retrying after {type(exc).__name__}"
                    log.exception("chain follower not started; retrying")
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                else:
                    self._trouble = None
                    self._run(consumer, follower)
                    return
        finally:
            if consumer is not None:
                consumer.close()

    def _prepare(self) -> tuple[BlockFollower, int]:
        state = self._handler.position()
        follower = BlockFollower(genesis_event=self._genesis_event, state=state)
        if state is None:
            return follower, OFFSET_BEGINNING
        self._metrics.height(state.height)
        return follower, OFFSET_BEGINNING if state.offset is None else state.offset + 1

    def _run(self, consumer: Any, follower: BlockFollower) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                messages = consume_available(consumer, max_messages=_BATCH, timeout=_POLL_SECONDS)
            except KafkaException as exc:
                self._trouble = f"retrying after {type(exc).__name__}"
                log.warning("consume failed; retrying", extra={"error": str(exc)})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            backoff = 0.1
            self._trouble = None
            for message in messages:
                if self._stop.is_set():
                    return  # not applied: read again from the stored position next start
                if message.error() is not None:
                    log.warning("consumer error", extra={"error": str(message.error())})
                    continue
                outcome = self._handle(consumer, follower, message)
                if outcome == "fault":
                    return
                if outcome in {"applied", "ignored"}:
                    # Done with (its effect stored): librdkafka's lag counts from here. No
                    # commit: the position lives in the service's store.
                    store_position(consumer, message)
                if outcome == "rewound":
                    break  # the rest of the batch was fetched before the seek

    def _handle(self, consumer: Any, follower: BlockFollower, message: Message) -> str:
        offset = message.offset()
        try:
            block, leaves = read_block(message.value() or b"")
            followed = follower.follow(block, leaves=leaves)
        except MissingBlocksError as exc:
            head = -1 if follower.state is None else follower.state.height
            if self._rewound_at != head:
                # Blocks missing before this one (a broker that lost its topics, a stored
                # offset from an older topic): read the topic again once per head.
                self._rewound_at = head
                log.warning(
                    "blocks missing; reading the topic from its start",
                    extra={"expected": exc.expected, "received": exc.computed},
                )
                consumer.seek(TopicPartition(self._topic, 0, OFFSET_BEGINNING))
                return "rewound"
            self._fault(exc, offset)
            return "fault"
        except ChainError as exc:
            self._fault(exc, offset)
            return "fault"
        if followed is None or follower.state is None:
            return "ignored"
        self._apply(followed, dataclasses.replace(follower.state, offset=offset))
        return "applied"

    def _apply(self, block: FollowedBlock, state: FollowerState) -> None:
        """Hand the block over, retrying with backoff while the handler fails (its store)."""
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._handler.apply(block, state)
            except Exception as exc:
                self._trouble = f"retrying after {type(exc).__name__}"
                log.exception("block not applied; retrying", extra={"height": block.height})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                self._trouble = None
                self._metrics.height(block.height)
                return

    def _fault(self, exc: ChainError, offset: int | None) -> None:
        # The evidence is heights, hashes, field names and ids: never an event's contents.
        evidence = {"offset": offset, **exc.evidence()}
        self._metrics.fault()
        where = "the stored position" if offset is None else f"offset {offset} of {self._topic}"
        self._failed = f"following stopped: {where} fails verification: {exc}"
        log.error("block refused; the chain follower stops here", extra={"evidence": evidence})
