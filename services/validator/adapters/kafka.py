"""The validation loop on Kafka: `ledger.blocks` and `ledger.attestations` read with
`assign()` (one partition each, no consumer group), attestations published back.

Positions live in the validator's store with the effects they caused, so a restarted
validator resumes after the last stored block, and catches up from there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from services.validator.errors import MissingBlocksError, StoreIntegrityError
from services.validator.ports import ATTESTATIONS_CURSOR, BLOCKS_CURSOR, ChainStore
from services.validator.service import Validator
from shared.attestation import Attestation
from shared.kafka import KafkaSettings
from shared.kafka.consume import consume_available, store_position
from shared.runtime.component import NotReadyError

log = logging.getLogger(__name__)

_BATCH = 200
_POLL_SECONDS = 0.2
_MAX_BACKOFF = 5.0
_CONSUMER_OVERRIDES: dict[str, Any] = {"enable.partition.eof": False}


class KafkaAttestationPublisher:
    """`AttestationPublisher` on a confluent-kafka producer (opened by the loop)."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        topic: str,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._factory = producer_factory
        self._producer: Any = None

    def open(self) -> None:
        if self._producer is None:
            self._producer = self._factory(self._kafka.producer_config())

    def publish(self, attestation: Attestation) -> None:
        if self._producer is None:
            raise RuntimeError("the attestation publisher is not open")
        value = attestation.model_dump_json().encode()
        while True:
            try:
                self._producer.produce(
                    self._topic,
                    key=str(attestation.height).encode(),
                    value=value,
                    on_delivery=_report_delivery,
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain
                self._producer.poll(0.1)
        self._producer.poll(0)

    def close(self, timeout: float = 5.0) -> None:
        if self._producer is not None:
            left = self._producer.flush(timeout)
            if left:
                log.warning("attestations not delivered at shutdown", extra={"count": left})
            self._producer = None


def _report_delivery(err: KafkaError | None, _msg: Message) -> None:
    if err is not None:
        # Lost attestations are published again when the block is seen again (a sealer
        # republish) and at the next start (Validator.reattest_recent); until then finality
        # waits for the other validators.
        log.error("attestation not delivered", extra={"error": str(err)})


class ValidationLoop:
    """The validator's consuming thread, as a Component (`/readyz` shows its state)."""

    name = "validation"

    def __init__(
        self,
        *,
        validator: Validator,
        store: ChainStore,
        publisher: KafkaAttestationPublisher,
        kafka: KafkaSettings,
        blocks_topic: str,
        attestations_topic: str,
        group_id: str,
        audit: bool = True,
        statistics: Callable[[str], None] | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        self._validator = validator
        self._store = store
        self._publisher = publisher
        self._kafka = kafka
        self._blocks_topic = blocks_topic
        self._attestations_topic = attestations_topic
        self._group_id = group_id  # names the consumer; nothing is committed under it
        self._consumer_factory = consumer_factory
        self._statistics = statistics  # librdkafka's stats_cb: consumer lag
        self._consumer: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._trouble: str | None = None
        self._audit = audit
        self._failed: str | None = None

    def start(self) -> None:
        # Restoring and auditing a long chain takes a while: do it on the loop's thread so
        # the service answers /healthz (and /readyz says why it is not ready) meanwhile.
        self._stop.clear()
        self._trouble = "starting: restoring and auditing the stored chain"
        self._thread = threading.Thread(target=self._main, name="validation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._publisher.close()

    def check(self) -> None:
        if self._failed is not None:
            raise NotReadyError(self._failed)
        if self._thread is None or not self._thread.is_alive():
            raise NotReadyError("the validation loop is not running")
        if self._trouble is not None:
            raise NotReadyError(self._trouble)

    def _main(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._prepare()
            except StoreIntegrityError as exc:
                # Serve the evidence (/v1/head, /readyz) but attest nothing more.
                self._failed = f"the store fails its audit: {exc}"
                return
            except Exception as exc:
                self._trouble = f"starting: retrying after {type(exc).__name__}"
                log.exception("validation loop not started; retrying")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                self._trouble = None
                self._run()
                return

    def _prepare(self) -> None:
        self._validator.restore()
        self._validator.check_store()
        if self._audit:
            self._validator.audit()
        self._publisher.open()
        self._validator.reattest_recent()
        if self._consumer is None:
            config = self._kafka.consumer_config(
                self._group_id,
                statistics=self._statistics,
                **_CONSUMER_OVERRIDES,
            )
            self._consumer = self._consumer_factory(config)
        self._consumer.assign(
            [
                TopicPartition(self._blocks_topic, 0, _next(self._store.cursor(BLOCKS_CURSOR))),
                TopicPartition(
                    self._attestations_topic, 0, _next(self._store.cursor(ATTESTATIONS_CURSOR))
                ),
            ]
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = consume_available(self._consumer, max_messages=_BATCH, timeout=_POLL_SECONDS)
            rewound = False
            for message in messages:
                if self._stop.is_set():
                    return  # not handled: read again from the stored cursor next start
                if message.error() is not None:
                    log.warning("consumer error", extra={"error": str(message.error())})
                    continue
                if rewound and message.topic() == self._blocks_topic:
                    continue  # fetched before the seek: read again after it
                rewound = self._handle(message)

    def _handle(self, message: Message) -> bool:
        """Apply one message, retrying with backoff while the store fails (transient);
        True if `ledger.blocks` was rewound to its start."""
        backoff = 0.1
        while not self._stop.is_set():
            try:
                value = message.value() or b""
                if message.topic() == self._blocks_topic:
                    self._validator.receive_block(value, offset=message.offset())
                else:
                    self._validator.receive_attestation(value, offset=message.offset())
            except MissingBlocksError as exc:
                log.warning(
                    "blocks missing before this one; reading ledger.blocks from its start",
                    extra={"expected": exc.expected, "received": exc.computed},
                )
                self._consumer.seek(TopicPartition(self._blocks_topic, 0, OFFSET_BEGINNING))
                return True
            except Exception as exc:
                self._trouble = f"retrying after {type(exc).__name__}"
                log.exception("message not applied; retrying", extra={"topic": message.topic()})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                self._trouble = None
                # The effect is stored: librdkafka's lag counts from here (no commit: the
                # position lives in our store, see the module docstring).
                store_position(self._consumer, message)
                return False
        return False


def _next(cursor: int | None) -> int:
    return OFFSET_BEGINNING if cursor is None else cursor + 1
