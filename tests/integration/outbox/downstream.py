"""Downstream of the relay: read a topic back, and a consumer that applies each event once."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from sqlalchemy import Column, MetaData, String, Table, Text, func, select

from shared.inbox import SqlProcessedEvents, migrate_inbox
from shared.kafka import KafkaSettings
from shared.store import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def dedup_key(self) -> tuple[str, str]:
        event = json.loads(self.value)
        return (event["source"], event["id"])


def read_topic(
    kafka: KafkaSettings, topic: str, *, at_least: int, quiet: float = 1.0, timeout: float = 20.0
) -> list[Record]:
    """Every record on `topic`: at least `at_least`, then whatever arrives until the topic
    has been `quiet` for that long (so duplicates are seen too).

    Not bounded by high watermarks: the embedded broker reports a high watermark of 1 for
    any non-empty partition. assign() rather than subscribe(): no slow group join.
    """
    consumer = Consumer(
        kafka.consumer_config(
            "outbox-tests-unused", logger=logging.getLogger(f"{__name__}.librdkafka")
        )
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while len(records) < at_least or time.monotonic() - last < quiet:
            if time.monotonic() > deadline:
                raise AssertionError(f"read {len(records)} of at least {at_least} records")
            message = consumer.poll(0.1)
            if message is None or message.error():
                continue
            last = time.monotonic()
            records.append(_record(message))
        return records
    finally:
        consumer.close()


def _record(message: Message) -> Record:
    partition, offset, value = message.partition(), message.offset(), message.value()
    assert partition is not None
    assert offset is not None
    assert isinstance(value, bytes)
    key = message.key()
    headers = message.headers() or []
    assert isinstance(headers, list)
    return Record(
        partition=partition,
        offset=offset,
        key=key if isinstance(key, bytes) else None,
        value=value,
        headers=tuple((name, v) for name, v in headers if isinstance(v, bytes)),
    )


_metadata = MetaData()
applied_table = Table(
    "applied_events",
    _metadata,
    Column("source", Text(), primary_key=True),
    Column("event_id", String(200), primary_key=True),
    Column("subject", Text(), nullable=True),
)


class ApplyingConsumer:
    """A downstream service in miniature: applies each event in a transaction together with
    its (source, id) mark, so redelivered events change nothing."""

    def __init__(self, *, database: Database, name: str = "downstream") -> None:
        self._database = database
        self._processed = SqlProcessedEvents(consumer=name)
        migrate_inbox(database)
        with database.transaction() as tx:
            _metadata.create_all(tx)
        self.skipped = 0

    def handle(self, record: Record) -> None:
        event = json.loads(record.value)
        with self._database.transaction() as tx:
            if not self._processed.add_if_new(tx, (event["source"], event["id"])):
                self.skipped += 1
                return
            # A primary key violation here would mean an event was applied twice.
            tx.execute(
                applied_table.insert().values(
                    source=event["source"], event_id=event["id"], subject=event.get("subject")
                )
            )

    def applied(self) -> list[tuple[str, str]]:
        with self._database.read() as connection:
            rows = connection.execute(select(applied_table.c.source, applied_table.c.event_id))
            return [(str(source), str(event_id)) for source, event_id in rows]

    def applied_count(self) -> int:
        with self._database.read() as connection:
            query = select(func.count()).select_from(applied_table)
            return int(connection.execute(query).scalar_one())
