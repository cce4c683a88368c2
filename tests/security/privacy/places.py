"""Every place a running CareLedger keeps or shows bytes, read whole, for the canary scan:
each Kafka topic, each service's /metrics, every validator's blocks, every file of the data
directory (SQLite files with their -wal and -shm, byte-wise) and every column of every table
of every SQLite database."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from careledger.topology import ServiceSpec
from shared.kafka import KafkaSettings

SQLITE_MAGIC = b"SQLite format 3\x00"


def kafka_topics(kafka: KafkaSettings, *, quiet_for: float = 3.0) -> dict[str, bytes]:
    """Every message (key, value and headers) of every partition of every topic the broker
    has, by topic. Read until nothing has arrived for `quiet_for` seconds (the embedded
    broker's high watermarks cannot bound the read)."""
    consumer = Consumer(kafka.consumer_config("security-privacy-scan"))
    found: dict[str, list[bytes]] = {}
    try:
        topics = consumer.list_topics(timeout=10).topics
        found = {name: [] for name in topics}
        consumer.assign(
            [
                TopicPartition(name, partition, OFFSET_BEGINNING)
                for name, topic in topics.items()
                for partition in topic.partitions
            ]
        )
        last = time.monotonic()
        while time.monotonic() - last < quiet_for:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            last = time.monotonic()
            parts = [message.key(), message.value()]
            parts += [value for _, value in message.headers() or []]
            found[str(message.topic())].append(
                b"\0".join(
                    part if isinstance(part, bytes) else str(part).encode()
                    for part in parts
                    if part is not None
                )
            )
    finally:
        consumer.close()
    return {f"kafka {name}": b"\n".join(messages) for name, messages in found.items()}


def service_metrics(services: list[ServiceSpec]) -> dict[str, bytes]:
    return {
        f"{spec.name} /metrics": httpx.get(f"{spec.url()}/metrics", timeout=10).content
        for spec in services
    }


def validator_blocks(url: str, name: str) -> dict[str, bytes]:
    """A validator's whole chain twice: its export (`/v1/chain`) and each `/v1/blocks/{h}`."""
    places = {f"{name} /v1/chain": httpx.get(f"{url}/v1/chain", timeout=60).content}
    head = httpx.get(f"{url}/v1/head", timeout=10).json()
    blocks = [
        httpx.get(f"{url}/v1/blocks/{height}", timeout=10).content
        for height in range(int(head["height"]) + 1)
    ]
    places[f"{name} /v1/blocks"] = b"\n".join(blocks)
    places[f"{name} /v1/head"] = httpx.get(f"{url}/v1/head", timeout=10).content
    return places


def data_files(directory: Path) -> dict[str, bytes]:
    """Every file under `directory`, byte-wise, and for each SQLite database the values of
    every column of every table (what the file holds in pages the byte scan could misread:
    overflow pages split a long value, so both views are scanned)."""
    places: dict[str, bytes] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        content = read_quietly(path)
        where = str(path.relative_to(directory))
        places[where] = content
        if content.startswith(SQLITE_MAGIC):
            places[f"{where} (every column)"] = sqlite_columns(path)
    return places


def sqlite_columns(path: Path) -> bytes:
    """The values of every column of every table, one per line (`sqlite_values`)."""
    return b"\n".join(sqlite_values(path))


def sqlite_values(path: Path) -> list[bytes]:
    """The values of every column of every table, read-only (a running service may hold the
    database open in WAL mode: the reader sees the WAL's committed pages too)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        tables = [
            row[0]
            for row in connection.execute("select name from sqlite_master where type = 'table'")
        ]
        values: list[bytes] = []
        for table in tables:
            for row in connection.execute(f'select * from "{table}"'):  # noqa: S608 - schema names
                values += [v if isinstance(v, bytes) else str(v).encode() for v in row]
        return values
    finally:
        connection.close()


def read_quietly(path: Path) -> bytes:
    """A file's bytes; a SQLite -wal or -shm file may vanish between listing and reading."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
